/**
 * The durable workflow behind every derivation the farm realises, keyed by its `.drv` path (and an
 * epoch that a re-submission bumps after a failure, so a failed derivation can be tried again).
 * Whoever reaches a derivation — any number of submitters — executes the same workflow id, so the
 * cluster runs it once however many graphs share it.
 *
 * A run: `plan` (read the .drv from the shared cache; done already if the cache has every output;
 * fail at once if no live runner offers its system and features), `enqueue` a build job that waits
 * in SQL for the inputs' jobs (src/farm/queue.ts), wait for a runner to finish it (the durable
 * deferred `build`), then `record` the result. Waiting for inputs is not a workflow wake-up: the
 * transaction that finishes an input releases the jobs waiting for it, so the critical path of a
 * graph is SQL transactions and runners' claims, and every workflow is woken once.
 */
import { Cause, Effect, Exit, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Activity, DurableDeferred, Workflow } from "effect/workflow"
import * as StorePath from "../core/store-path.ts"
import { readDerivation } from "../build/derivation-graph.ts"
import type { StoreReadApi } from "../services/store-read.ts"
import * as Db from "./db.ts"
import { DerivationResult, FarmBuildFailed, enqueue, exitFromJson, failedWith, finish, type DerivationExit } from "./queue.ts"

export { DerivationResult, FarmBuildFailed, storedResult } from "./queue.ts"

export const DerivationWorkflow = Workflow.make("b3/Derivation", {
  payload: { drvPath: Schema.String, epoch: Schema.Number, submission: Schema.String },
  success: DerivationResult,
  error: FarmBuildFailed,
  idempotencyKey: ({ drvPath, epoch }) => epoch === 0 ? drvPath : `${drvPath}#${epoch}`
})

/** Completed by the runner that built (or failed to build) the derivation, or by the failure of an input. */
export const BuildDone = DurableDeferred.make("build", { success: DerivationResult, error: FarmBuildFailed })

const Plan = Schema.Struct({
  /** A job exists already (the submitter enqueued it). */
  enqueued: Schema.Boolean,
  cached: Schema.Boolean,
  outputs: Schema.Record(Schema.String, Schema.String),
  deps: Schema.Array(Schema.String),
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

const asFarmError = (drvPath: string) => (e: unknown): FarmBuildFailed =>
  e instanceof FarmBuildFailed ? e : failedWith(drvPath, "error", e instanceof Error ? e.message : String(e))

/** Why none of `runners` can build a derivation for `system` needing `features` (none: one can, or no runner is alive to ask). */
export const capabilityProblem = (runners: ReadonlyArray<Db.RunnerRow>, system: string, features: ReadonlyArray<string>): string | undefined => {
  if (runners.length === 0) return undefined // runners come and go: with none alive the job waits for one
  const forSystem = runners.filter((r) => Db.splitList(r.systems).includes(system))
  if (forSystem.length === 0) {
    const offered = Db.joinList(runners.flatMap((r) => Db.splitList(r.systems)))
    return `it needs system '${system}', which no runner offers (runners build for: ${offered || "nothing"})`
  }
  if (forSystem.some((r) => features.every((f) => Db.splitList(r.features).includes(f)))) return undefined
  const offered = new Set(forSystem.flatMap((r) => Db.splitList(r.features)))
  const missing = features.filter((f) => !offered.has(f))
  const named = missing.length > 0 ? missing : features
  return `it requires system feature${named.length > 1 ? "s" : ""} ${named.map((f) => `'${f}'`).join(", ")}, which no runner for '${system}' offers${missing.length === 0 ? " together" : ""} (runners offer: ${Db.joinList(offered) || "no features"})`
}

const checkCapability = (drvPath: string, system: string, features: ReadonlyArray<string>) => Effect.gen(function*() {
  const problem = capabilityProblem(yield* Db.liveRunners(runnerLiveMs), system, features)
  if (problem !== undefined) return yield* failedWith(drvPath, "unsupported", problem)
})

export interface WorkflowContext {
  /** The shared cache, where .drv files, sources and outputs live. */
  readonly cache: StoreReadApi
  /** Wakes idle runners after a job is queued (PostgreSQL NOTIFY), if the database can. */
  readonly notifyQueued: Effect.Effect<void>
  readonly log?: ((line: string) => void) | undefined
}

const plan = (ctx: WorkflowContext, drvPath: string, epoch: number) => Effect.gen(function*() {
  // The submitter usually planned and enqueued the whole graph already (src/farm/submit.ts).
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* sql<{ drv: string }>`SELECT drv FROM farm_jobs WHERE drv = ${drvPath} AND epoch = ${epoch}`
  if (jobs.length > 0) return { enqueued: true, cached: false, outputs: {}, deps: [], system: "", features: [] }
  const decided = yield* sql<{ result: string }>`SELECT result FROM farm_derivations WHERE drv = ${drvPath} AND epoch = ${epoch} AND state <> 'pending' AND result IS NOT NULL`
  if (decided.length > 0) {
    const exit = exitFromJson(decided[0]!.result)
    if (Exit.isFailure(exit)) return yield* Effect.failCause(exit.cause)
    return { enqueued: false, cached: true, outputs: exit.value.outputs, deps: [], system: "", features: [] }
  }
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
  if (present.length === outputPaths.length) return { enqueued: false, cached: true, outputs, deps: [], system: drv.system, features }
  yield* checkCapability(drvPath, drv.system, features)
  return { enqueued: false, cached: false, outputs, deps: [...drv.inputDrvs.keys()], system: drv.system, features }
})

const retrySql = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.retry({ schedule: Db.sqlRetry, times: 30, while: (e) => (e as { _tag?: string })._tag === "SqlError" }))

/** Completes the `build` deferred of jobs failed because an input failed. */
/** The token of a derivation's `build` deferred, from its workflow's execution id. */
export const buildToken = (executionId: string): string =>
  DurableDeferred.tokenFromExecutionId(BuildDone, { workflow: DerivationWorkflow, executionId })

export const wakeCascaded = (cascaded: ReadonlyArray<{ readonly token: string; readonly exit: DerivationExit }>) =>
  Effect.forEach(cascaded, (c) => DurableDeferred.done(BuildDone, { token: c.token as DurableDeferred.Token, exit: c.exit }), { concurrency: 16, discard: true })

/** Stores the result (if no runner did), marks it recorded, releases or fails the jobs waiting for it. */
const record = (drvPath: string, epoch: number, exit: DerivationExit) => Effect.gen(function*() {
  const finished = yield* retrySql(finish(drvPath, epoch, exit, { recorded: true }))
  if (finished.decided && Exit.isSuccess(exit) && exit.value.status === "cached") yield* Effect.ignore(Db.event(drvPath, "cached"))
  yield* wakeCascaded(finished.cascaded)
  return finished.released.length > 0
})

/** The workflow's implementation, registered by every runner. */
export const derivationWorkflowLayer = (ctx: WorkflowContext) => DerivationWorkflow.toLayer(Effect.fnUntraced(function*(payload, executionId) {
  const { drvPath, epoch, submission } = payload
  const body = Effect.gen(function*() {
    const planned = yield* Activity.make({
      name: "plan", success: Plan, error: FarmBuildFailed,
      execute: retrySql(plan(ctx, drvPath, epoch)).pipe(Effect.mapError(asFarmError(drvPath)))
    })
    if (planned.cached) return { outputs: planned.outputs, status: "cached" as const }
    if (planned.enqueued) return yield* DurableDeferred.await(BuildDone)
    const token = yield* DurableDeferred.token(BuildDone)
    const enqueued = yield* Activity.make({
      name: "enqueue",
      success: Schema.Struct({ failedDep: Schema.optional(Schema.String), queued: Schema.Boolean }),
      execute: Effect.orDie(retrySql(enqueue({
        drv: drvPath, epoch, system: planned.system, features: planned.features, submission, token, execution: executionId, deps: planned.deps
      }))).pipe(Effect.tap((e) => e.queued ? ctx.notifyQueued : Effect.void))
    })
    if (enqueued.failedDep !== undefined) return yield* failedWith(drvPath, "dependency", `dependency '${enqueued.failedDep}' failed`)
    return yield* DurableDeferred.await(BuildDone)
  })
  // A suspension (an interruption) is not a result; a typed failure or a defect is, and is recorded.
  const exit = yield* Effect.exit(body)
  if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) return yield* exit
  const outcome: DerivationExit = Exit.isSuccess(exit) ? exit : Exit.fail(Option.getOrElse(Exit.findErrorOption(exit),
    () => failedWith(drvPath, "error", Cause.pretty(exit.cause).split("\n")[0] ?? "the workflow died")))
  yield* Activity.make({
    name: "record", success: Schema.Boolean,
    execute: Effect.orDie(record(drvPath, epoch, outcome)).pipe(Effect.tap((released) => Effect.andThen(
      Effect.sync(() => ctx.log?.(`recorded ${drvPath}: ${Exit.isSuccess(outcome) ? outcome.value.status : "failed"}`)),
      released ? ctx.notifyQueued : Effect.void)))
  })
  return yield* outcome
}))
