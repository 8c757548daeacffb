/**
 * The durable workflow behind every derivation the farm realises, keyed by its `.drv` path (and an
 * epoch that a re-submission bumps after a failure, so a failed derivation can be tried again).
 * Whoever reaches a derivation — a submitter, or another derivation's workflow — executes the same
 * workflow id, so the cluster runs it once however many graphs share it.
 *
 * A run: `plan` (read the .drv from the shared cache; done already if the cache has every output;
 * fail at once if no live runner offers its system and features), start the input derivations'
 * workflows and wait for them (`wait-deps`: a durable deferred per input, completed by the input's
 * `record`), `enqueue` a build job and wait for a runner to finish it (durable deferred `build`),
 * then `record` the result and wake the derivations waiting for this one.
 */
import { Effect, Exit, Option, Result, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Activity, DurableDeferred, Workflow } from "effect/workflow"
import * as StorePath from "../core/store-path.ts"
import { readDerivation } from "../build/derivation-graph.ts"
import type { StoreReadApi } from "../services/store-read.ts"
import * as Db from "./db.ts"

export class FarmBuildFailed extends Schema.TaggedError<FarmBuildFailed>()("FarmBuildFailed", {
  drvPath: Schema.String,
  /** build: the builder failed; dependency: an input failed; unsupported: no runner can build it; error: the farm could not go on */
  kind: Schema.Literals(["build", "dependency", "unsupported", "error"]),
  reason: Schema.String,
  logTail: Schema.String
}) {
  override get message() {
    return `build of '${this.drvPath}' failed: ${this.reason}${this.logTail ? `\nlast log lines:\n${this.logTail}` : ""}`
  }
}

export const DerivationResult = Schema.Struct({
  outputs: Schema.Record(Schema.String, Schema.String),
  /** built: by a runner for this request; cached: the shared cache had it */
  status: Schema.Literals(["built", "cached"])
})
export type DerivationResult = typeof DerivationResult.Type

export const DerivationWorkflow = Workflow.make("b3/Derivation", {
  payload: { drvPath: Schema.String, epoch: Schema.Number, submission: Schema.String },
  success: DerivationResult,
  error: FarmBuildFailed,
  idempotencyKey: ({ drvPath, epoch }) => epoch === 0 ? drvPath : `${drvPath}#${epoch}`
})

/** Completed by the runner that built (or failed to build) the derivation. */
export const BuildDone = DurableDeferred.make("build", { success: Schema.Record(Schema.String, Schema.String), error: FarmBuildFailed })

/** Completed by an input derivation's `record`, for each derivation waiting on it. */
export const dependencyDone = (depDrv: string) =>
  DurableDeferred.make(`dep:${depDrv.slice(depDrv.lastIndexOf("/") + 1)}`, { success: DerivationResult, error: FarmBuildFailed })

const Plan = Schema.Struct({
  cached: Schema.Boolean,
  outputs: Schema.Record(Schema.String, Schema.String),
  deps: Schema.Array(Schema.Struct({ drvPath: Schema.String, epoch: Schema.Number })),
  system: Schema.String,
  features: Schema.Array(Schema.String)
})

/** The `requiredSystemFeatures` of a derivation (env attribute, or structured attributes' JSON). */
export const requiredFeatures = (env: ReadonlyMap<string, string>): Array<string> => {
  const json = env.get("__json")
  if (json !== undefined) {
    try {
      const value = (JSON.parse(json) as { requiredSystemFeatures?: unknown }).requiredSystemFeatures
      return Array.isArray(value) ? value.filter((f): f is string => typeof f === "string") : []
    } catch { return [] }
  }
  return (env.get("requiredSystemFeatures") ?? "").split(/\s+/).filter((f) => f.length > 0)
}

/** How long a runner counts as alive after its last heartbeat. */
export const runnerLiveMs = 30_000

const failedWith = (drvPath: string, kind: FarmBuildFailed["kind"], reason: string) =>
  new FarmBuildFailed({ drvPath, kind, reason, logTail: "" })

const asFarmError = (drvPath: string) => (e: unknown): FarmBuildFailed =>
  e instanceof FarmBuildFailed ? e : failedWith(drvPath, "error", e instanceof Error ? e.message : String(e))

/** Which live runners could build it; the error names what is missing. */
const checkCapability = (drvPath: string, system: string, features: ReadonlyArray<string>) => Effect.gen(function*() {
  const runners = yield* Db.liveRunners(runnerLiveMs)
  if (runners.length === 0) return // runners come and go: with none alive the job waits for one
  const forSystem = runners.filter((r) => Db.splitList(r.systems).includes(system))
  if (forSystem.length === 0) {
    const offered = Db.joinList(runners.flatMap((r) => Db.splitList(r.systems)))
    return yield* failedWith(drvPath, "unsupported", `it needs system '${system}', which no runner offers (runners build for: ${offered || "nothing"})`)
  }
  if (forSystem.some((r) => features.every((f) => Db.splitList(r.features).includes(f)))) return
  const offered = new Set(forSystem.flatMap((r) => Db.splitList(r.features)))
  const missing = features.filter((f) => !offered.has(f))
  const named = missing.length > 0 ? missing : features
  return yield* failedWith(drvPath, "unsupported",
    `it requires system feature${named.length > 1 ? "s" : ""} ${named.map((f) => `'${f}'`).join(", ")}, which no runner for '${system}' offers${missing.length === 0 ? " together" : ""} (runners offer: ${Db.joinList(offered) || "no features"})`)
})

export interface WorkflowContext {
  /** The shared cache, where .drv files, sources and outputs live. */
  readonly cache: StoreReadApi
  /** Wakes idle runners after a job is queued (PostgreSQL NOTIFY), if the database can. */
  readonly notifyQueued: Effect.Effect<void>
}

const plan = (ctx: WorkflowContext, drvPath: string) => Effect.gen(function*() {
  const parsed = StorePath.parse(drvPath, ctx.cache.storeDir)
  if (parsed._tag === "Failure") return yield* failedWith(drvPath, "error", parsed.failure.message)
  const drv = yield* readDerivation(ctx.cache, parsed.success)
  const outputs: Record<string, string> = {}
  for (const [name, output] of drv.outputs) {
    if (output._tag !== "InputAddressed" && output._tag !== "Fixed") {
      return yield* failedWith(drvPath, "unsupported", `output '${name}' is ${output._tag.toLowerCase()} (content-addressed or impure derivations are not supported)`)
    }
    outputs[name] = output.path
  }
  const outputPaths = Object.values(outputs).map((p) => StorePath.parse(p, ctx.cache.storeDir)).flatMap((r) => r._tag === "Success" ? [r.success] : [])
  const present = yield* ctx.cache.queryValidPaths(outputPaths)
  const features = requiredFeatures(drv.env)
  if (present.length === outputPaths.length) return { cached: true, outputs, deps: [], system: drv.system, features }
  yield* checkCapability(drvPath, drv.system, features)
  const depPaths = [...drv.inputDrvs.keys()]
  const sql = yield* SqlClient.SqlClient
  const epochs = depPaths.length === 0 ? [] : yield* sql<{ drv: string; epoch: number }>`SELECT drv, epoch FROM farm_derivations WHERE ${sql.in("drv", depPaths)}`
  const epochOf = new Map(epochs.map((r) => [r.drv, Number(r.epoch)]))
  return { cached: false, outputs, deps: depPaths.map((d) => ({ drvPath: d, epoch: epochOf.get(d) ?? 0 })), system: drv.system, features }
})

/** Registers this derivation as waiting on each input; gives the inputs that had finished already. */
const registerWaiters = (parent: string, deps: ReadonlyArray<{ drvPath: string; token: string }>) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const finished: Array<{ drvPath: string; state: string; result: string }> = []
  yield* sql.withTransaction(Effect.gen(function*() {
    for (const dep of deps) {
      yield* sql`INSERT INTO farm_derivations (drv, epoch, state, updated_at) VALUES (${dep.drvPath}, 0, 'pending', ${Db.now()}) ON CONFLICT (drv) DO NOTHING`
      const rows = yield* sql.onDialectOrElse({
        pg: () => sql<{ state: string; result: string | null }>`SELECT state, result FROM farm_derivations WHERE drv = ${dep.drvPath} FOR UPDATE`,
        orElse: () => sql<{ state: string; result: string | null }>`SELECT state, result FROM farm_derivations WHERE drv = ${dep.drvPath}`
      })
      const row = rows[0]
      if (row && row.state !== "pending" && row.result) finished.push({ drvPath: dep.drvPath, state: row.state, result: row.result })
      else yield* sql`INSERT INTO farm_waiters (dep, parent, token) VALUES (${dep.drvPath}, ${parent}, ${dep.token}) ON CONFLICT (dep, parent) DO UPDATE SET token = ${dep.token}`
    }
  }))
  return finished
})

const ExitJson = Schema.toCodecJson(Schema.Exit(DerivationResult, FarmBuildFailed, Schema.Defect()))
const encodeExit = Schema.encodeSync(ExitJson)
const decodeExit = Schema.decodeUnknownSync(ExitJson)

/** Stores the result and completes the deferred of every derivation waiting on this one. */
const record = (drvPath: string, exit: Exit.Exit<DerivationResult, FarmBuildFailed>) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const state = Exit.isSuccess(exit) ? "done" : "failed"
  const result = JSON.stringify(encodeExit(exit))
  const waiters = yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`INSERT INTO farm_derivations (drv, epoch, state, result, updated_at) VALUES (${drvPath}, 0, ${state}, ${result}, ${Db.now()})
      ON CONFLICT (drv) DO UPDATE SET state = ${state}, result = ${result}, updated_at = ${Db.now()}`
    return yield* sql<{ token: string }>`SELECT token FROM farm_waiters WHERE dep = ${drvPath}`
  }))
  const deferred = dependencyDone(drvPath)
  yield* Effect.forEach(waiters, (w) => DurableDeferred.done(deferred, { token: w.token as DurableDeferred.Token, exit }), { concurrency: 16, discard: true })
  yield* sql`DELETE FROM farm_waiters WHERE dep = ${drvPath}`
})

const retrySql = <A, E, R>(effect: Effect.Effect<A, E, R>) => effect.pipe(Effect.retry({ schedule: Db.sqlRetry, times: 30, while: (e) => (e as { _tag?: string })._tag === "SqlError" }))

/** The workflow's implementation, registered by every runner. */
export const derivationWorkflowLayer = (ctx: WorkflowContext) => DerivationWorkflow.toLayer(Effect.fnUntraced(function*(payload) {
  const { drvPath, submission } = payload
  // typed failures only: a suspension (an interruption) must not be recorded as a result
  const outcomeResult = yield* Effect.result(Effect.gen(function*() {
    const planned = yield* Activity.make({
      name: "plan", success: Plan, error: FarmBuildFailed,
      execute: retrySql(plan(ctx, drvPath)).pipe(Effect.mapError(asFarmError(drvPath)))
    })
    if (planned.cached) {
      yield* Activity.make({ name: "cached-event", execute: Effect.orDie(retrySql(Db.event(drvPath, "cached"))) })
      return { outputs: planned.outputs, status: "cached" as const }
    }
    if (planned.deps.length > 0) {
      yield* Effect.forEach(planned.deps, (dep) =>
        DerivationWorkflow.execute({ drvPath: dep.drvPath, epoch: dep.epoch, submission }, { discard: true, detached: true }), { concurrency: 16, discard: true })
      const tokens = yield* Effect.forEach(planned.deps, (dep) => Effect.map(DurableDeferred.token(dependencyDone(dep.drvPath)), (token) => ({ drvPath: dep.drvPath, token })))
      const finished = yield* Activity.make({
        name: "wait-deps",
        success: Schema.Array(Schema.Struct({ drvPath: Schema.String, state: Schema.String, result: Schema.String })),
        execute: Effect.orDie(retrySql(registerWaiters(drvPath, tokens)))
      })
      const done = new Set(finished.map((f) => f.drvPath))
      for (const f of finished) {
        if (f.state !== "done") return yield* failedWith(drvPath, "dependency", `dependency '${f.drvPath}' failed`)
      }
      yield* Effect.forEach(planned.deps.filter((d) => !done.has(d.drvPath)), (dep) =>
        DurableDeferred.await(dependencyDone(dep.drvPath)).pipe(
          Effect.mapError(() => failedWith(drvPath, "dependency", `dependency '${dep.drvPath}' failed`))), { concurrency: "unbounded", discard: true })
    }
    const token = yield* DurableDeferred.token(BuildDone)
    yield* Activity.make({
      name: "enqueue",
      execute: Effect.orDie(retrySql(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const inserted = yield* sql<{ drv: string }>`INSERT INTO farm_jobs (drv, epoch, system, features, submission, token, state, queued_at)
          VALUES (${drvPath}, ${payload.epoch}, ${planned.system}, ${Db.joinList(planned.features)}, ${submission}, ${token}, 'queued', ${Db.now()})
          ON CONFLICT (drv, epoch) DO NOTHING RETURNING drv`
        if (inserted.length > 0) yield* Db.event(drvPath, "queued")
      }))).pipe(Effect.tap(() => ctx.notifyQueued))
    })
    const outputs = yield* DurableDeferred.await(BuildDone)
    return { outputs, status: "built" as const }
  }))
  const outcome: Exit.Exit<DerivationResult, FarmBuildFailed> = Result.isSuccess(outcomeResult)
    ? Exit.succeed(outcomeResult.success) : Exit.fail(outcomeResult.failure)
  yield* Activity.make({ name: "record", execute: Effect.orDie(retrySql(record(drvPath, outcome))) })
  return yield* outcome
}))

/** The stored result of a derivation, if it has finished. */
export const storedResult = (row: { readonly state: string; readonly result: string | null }): Option.Option<Exit.Exit<DerivationResult, FarmBuildFailed>> =>
  row.state === "pending" || !row.result ? Option.none() : Option.some(decodeExit(JSON.parse(row.result)) as Exit.Exit<DerivationResult, FarmBuildFailed>)
