/**
 * Submitting to the farm: upload the .drv closure (with the sources it names) to the shared cache,
 * start a workflow for every derivation of the graph (so its leaves start at once; a workflow also
 * starts its inputs' workflows, so graphs reached another way work too), then watch: events and
 * log lines from the farm's tables, results when the roots' workflows have recorded them. At the
 * end the outputs are substituted from the cache into the local store, signatures checked.
 *
 * The submission id is the handle: `attach(id)` watches a running submission again (after the
 * client was stopped or detached); re-submitting the same targets joins the same workflows.
 */
import { randomBytes } from "node:crypto"
import { Cause, Effect, Exit, Fiber, Option, Result, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { WorkflowEngine } from "effect/workflow/WorkflowEngine"
import type * as Signature from "../core/signature.ts"
import * as StorePath from "../core/store-path.ts"
import { computeClosure, topoSortInfos } from "../services/closure.ts"
import { copyPaths } from "../services/copy.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead, type StoreReadApi } from "../services/store-read.ts"
import type { StoreWriteApi } from "../services/store-write.ts"
import * as Db from "./db.ts"
import { readDerivation } from "../build/derivation-graph.ts"
import { enqueue, failedWith, finish, notifyQueued, withSchedulerLock, type Cascaded, type DerivationExit } from "./queue.ts"
import { DerivationWorkflow, FarmBuildFailed, buildToken, capabilityProblem, requiredFeatures, runnerLiveMs, storedResult, wakeCascaded, type DerivationResult } from "./workflow.ts"

/** What a submitter sees, one per derivation and step (`--json` prints them). */
export interface FarmEvent {
  readonly id: number
  readonly at: number
  readonly drvPath: string
  /** queued | building | built | cached | failed | requeued */
  readonly type: string
  readonly runner: string | null
  readonly message: string | null
}

export interface SubmitOptions {
  /** The store the targets are valid in, and the outputs are substituted into. */
  readonly local: { readonly read: StoreReadApi; readonly write: StoreWriteApi }
  readonly cache: { readonly read: StoreReadApi; readonly write: StoreWriteApi }
  /** Keys trusted for the outputs substituted from the cache (the farm's key). */
  readonly trustedKeys: ReadonlyArray<Signature.PublicKey>
  /** The submission's id (default: a new random one). */
  readonly submission?: string | undefined
  /** Start the workflows and return without waiting. */
  readonly detach?: boolean | undefined
  /** Copy the outputs into the local store at the end (default true). */
  readonly substitute?: boolean | undefined
  /** Called once the graph is known: its derivations and those the farm had finished before. */
  readonly onPlan?: ((plan: { readonly submission: string; readonly derivations: ReadonlyArray<string>; readonly finished: ReadonlyArray<string> }) => void) | undefined
  readonly onEvent?: ((event: FarmEvent) => void) | undefined
  readonly onLog?: ((drvPath: string, text: string) => void) | undefined
  /** How often the watcher reads new events (default 100 ms). */
  readonly pollMs?: number | undefined
}

export interface SubmitResult {
  readonly drvPath: string
  readonly outputs: Readonly<Record<string, string>>
  readonly status: DerivationResult["status"]
}

export class SubmissionNotFound extends Schema.TaggedError<SubmissionNotFound>()("SubmissionNotFound", { submission: Schema.String }) {
  override get message() { return `no farm submission '${this.submission}'` }
}

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** `B3_FARM_TRACE=1`: the submitter's phases on stderr, in ms since the process started (bench/farm reads them). */
const tracing = process.env.B3_FARM_TRACE === "1"
export const trace = (phase: string) => Effect.sync(() => {
  if (tracing) process.stderr.write(`farm trace: ${phase} at ${performance.now().toFixed(0)} ms\n`)
})

const newSubmissionId = () => `sub-${randomBytes(6).toString("hex")}`

/** Current epochs of the graph's derivations; failed ones get a new epoch (a fresh workflow) so they are tried again. */
const epochsFor = (drvs: ReadonlyArray<string>) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const epochs = new Map<string, number>()
  const finished: Array<string> = []
  for (const part of chunks(drvs, 500)) {
    yield* sql`UPDATE farm_derivations SET epoch = epoch + 1, state = 'pending', result = NULL, updated_at = ${Db.now()} WHERE state = 'failed' AND ${sql.in("drv", part)}`
    const rows = yield* sql<{ drv: string; epoch: number; state: string }>`SELECT drv, epoch, state FROM farm_derivations WHERE ${sql.in("drv", part)}`
    for (const row of rows) {
      epochs.set(row.drv, Number(row.epoch))
      if (row.state === "done") finished.push(row.drv)
    }
  }
  return { epochs, finished }
})

/**
 * Starts a derivation's workflow. The cluster reports a transient failure (a shard not assigned yet
 * while runners join, a runner gone) as a defect; starting is idempotent (the execution id comes
 * from the payload), so it is tried again a few times before the submission fails with it.
 */
const startWorkflow = (payload: { readonly drvPath: string; readonly epoch: number; readonly submission: string }) =>
  DerivationWorkflow.execute(payload, { discard: true }).pipe(
    Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : Effect.fail(cause)),
    Effect.retry({ schedule: Db.sqlRetry, times: 8 }),
    Effect.catch((cause) => Effect.failCause(cause)))

/** Uploads and starts the graph of `drvPaths`; gives the submission id. */
export const start = (drvPaths: ReadonlyArray<StorePath.StorePath>, options: SubmitOptions) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* trace("start")
  yield* Db.migrate
  const storeDir = options.local.read.storeDir
  const closure = yield* computeClosure(drvPaths).pipe(Effect.provideService(StoreRead, options.local.read))
  yield* copyPaths(options.local.read, options.cache, closure, { closure: false, checkSigs: false })
  yield* trace(`uploaded the closure (${closure.length} paths)`)
  // inputs before the derivations that use them, so the leaves' jobs are queued first
  const infos = yield* Effect.forEach(closure.filter((p) => p.name.endsWith(".drv")), (p) => options.local.read.queryPathInfo(p), { concurrency: 16 })
  const derivations = Result.getOrElse(topoSortInfos(infos, storeDir), () => infos).map((i) => StorePath.print(i.path, storeDir))
  const roots = drvPaths.map((p) => StorePath.print(p, storeDir))
  const submission = options.submission ?? newSubmissionId()
  // under the scheduler's lock: submitters sharing derivations write the same rows
  const { epochs, finished } = yield* withSchedulerLock(epochsFor(derivations))
  yield* sql`INSERT INTO farm_submissions (id, roots, created_at) VALUES (${submission}, ${JSON.stringify({ roots, derivations })}, ${Db.now()})
    ON CONFLICT (id) DO UPDATE SET roots = ${JSON.stringify({ roots, derivations })}`
  options.onPlan?.({ submission, derivations, finished })
  const done = new Set(finished)
  const todo = derivations.filter((d) => !done.has(d)).map((drvPath) => ({ drvPath, epoch: epochs.get(drvPath) ?? 0, submission }))
  // The derivations and their workflows' ids: a runner restarts a workflow that never gets going.
  const t = Db.now()
  for (const part of chunks(todo, 200)) {
    const rows = yield* Effect.forEach(part, (p) => Effect.map(DerivationWorkflow.executionId(p),
      (execution) => ({ drv: p.drvPath, epoch: p.epoch, state: "pending", execution, submission, updated_at: t })))
    if (rows.length === 0) continue
    yield* withSchedulerLock(sql`INSERT INTO farm_derivations ${sql.insert(rows as [typeof rows[number], ...Array<typeof rows[number]>])} ON CONFLICT (drv) DO UPDATE SET execution = excluded.execution,
      submission = COALESCE(farm_derivations.submission, excluded.submission)`)
  }
  yield* trace("wrote the derivations' rows")
  yield* planGraph(todo, submission, options)
  yield* trace("planned the graph")
  // the builds are under way; the workflows are started meanwhile (join `started` before leaving)
  const started = yield* Effect.forEach(todo, startWorkflow, { concurrency: 16, discard: true }).pipe(
    Effect.tap(() => trace("started the workflows")),
    Effect.forkChild({ startImmediately: true }))
  return { submission, roots, derivations, started: Fiber.join(started) }
})

/**
 * Plans the graph at once, as each derivation's workflow would one by one: a derivation whose
 * outputs the cache has is done, one no live runner can build fails, the others get their jobs
 * (blocked on their inputs' jobs). The submitter has every .drv at hand, so the first builds start
 * as soon as this commits, without waiting for the workflows to get going; each workflow then finds
 * its job (or result) and waits for it. Derivations of other kinds are left to their workflows.
 */
const planGraph = (todo: ReadonlyArray<{ readonly drvPath: string; readonly epoch: number }>, submission: string, options: Pick<SubmitOptions, "local" | "cache">) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const storeDir = options.local.read.storeDir
    const planned = yield* Effect.forEach(todo, (t) => Effect.gen(function*() {
      const drv = yield* readDerivation(options.local.read, yield* Effect.fromResult(StorePath.parse(t.drvPath, storeDir)))
      const outputs: Record<string, string> = {}
      for (const [name, output] of drv.outputs) {
        if (output._tag !== "InputAddressed" && output._tag !== "Fixed") return []
        outputs[name] = output.path
      }
      return [{ ...t, drv, outputs, execution: yield* DerivationWorkflow.executionId({ drvPath: t.drvPath, epoch: t.epoch, submission }) }]
    }), { concurrency: 16 }).pipe(Effect.map((all) => all.flat()))
    const outputPaths = planned.flatMap((p) => Object.values(p.outputs)).flatMap((o) => Result.isSuccess(StorePath.parse(o, storeDir)) ? [StorePath.parse(o, storeDir).pipe(Result.getOrThrow)] : [])
    const present = new Set((yield* options.cache.read.queryValidPaths(outputPaths)).map((p) => StorePath.print(p, storeDir)))
    const runners = yield* Db.liveRunners(runnerLiveMs)
    const cascaded: Array<Cascaded> = []
    let queued = false
    // inputs come first (todo is in dependency order), so a part never waits for a later one
    for (const part of chunks(planned, 50)) {
      yield* Db.transaction(sql, Effect.forEach(part, (p) => Effect.gen(function*() {
        const decide = (exit: DerivationExit) => Effect.map(finish(p.drvPath, p.epoch, exit), (f) => { cascaded.push(...f.cascaded) })
        if (Object.values(p.outputs).every((o) => present.has(o))) {
          yield* decide(Exit.succeed({ outputs: p.outputs, status: "cached" }))
          return yield* Db.event(p.drvPath, "cached")
        }
        const features = requiredFeatures(p.drv.env)
        const problem = capabilityProblem(runners, p.drv.system, features)
        if (problem !== undefined) {
          yield* decide(Exit.fail(failedWith(p.drvPath, "unsupported", problem)))
          return yield* Db.event(p.drvPath, "failed", undefined, problem)
        }
        const enqueued = yield* enqueue({
          drv: p.drvPath, epoch: p.epoch, system: p.drv.system, features, submission, token: buildToken(p.execution), execution: p.execution,
          deps: [...p.drv.inputDrvs.keys()]
        })
        if (enqueued.failedDep !== undefined) yield* decide(Exit.fail(failedWith(p.drvPath, "dependency", `dependency '${enqueued.failedDep}' failed`)))
        queued ||= enqueued.queued
      }), { discard: true }))
    }
    if (queued) yield* notifyQueued
    yield* wakeCascaded(cascaded)
  })

/** Watches a submission until its roots have finished; gives their results (or the first failure). */
export const watch = (submission: string, options: Pick<SubmitOptions, "onEvent" | "onLog" | "pollMs">) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ roots: string }>`SELECT roots FROM farm_submissions WHERE id = ${submission}`
  if (rows.length === 0) return yield* new SubmissionNotFound({ submission })
  const { roots, derivations } = JSON.parse(rows[0]!.roots) as { roots: Array<string>; derivations: Array<string> }
  const inGraph = new Set(derivations)
  // Events and log lines of the graph since the submission was made (a re-attach replays them).
  const [before] = yield* sql<{ id: number }>`SELECT COALESCE(MAX(id), 0) AS id FROM farm_events
    WHERE at < (SELECT created_at FROM farm_submissions WHERE id = ${submission})`
  let lastEvent = Number(before?.id ?? 0)
  let lastLog = 0
  const pollMs = options.pollMs ?? 100
  while (true) {
    if (options.onEvent) {
      const events = yield* sql<{ id: number; at: number; drv: string; type: string; runner: string | null; message: string | null }>`SELECT id, at, drv, type, runner, message FROM farm_events WHERE id > ${lastEvent} ORDER BY id LIMIT 5000`
      for (const e of events) {
        lastEvent = Number(e.id)
        if (inGraph.has(e.drv)) options.onEvent({ id: lastEvent, at: Number(e.at), drvPath: e.drv, type: e.type, runner: e.runner, message: e.message })
      }
    }
    if (options.onLog) {
      const logs = yield* sql<{ id: number; drv: string; chunk: string }>`SELECT id, drv, chunk FROM farm_logs WHERE id > ${lastLog} ORDER BY id LIMIT 5000`
      for (const l of logs) {
        lastLog = Number(l.id)
        if (inGraph.has(l.drv)) options.onLog(l.drv, l.chunk)
      }
    }
    const states = yield* sql<{ drv: string; state: string; result: string | null }>`SELECT drv, state, result FROM farm_derivations WHERE ${sql.in("drv", roots)}`
    const results = new Map(states.flatMap((s) => Option.match(storedResult(s), { onNone: () => [], onSome: (exit) => [[s.drv, exit] as const] })))
    const failed = [...results.values()].find(Exit.isFailure)
    if (results.size === roots.length || failed) {
      if (failed && Exit.isFailure(failed)) {
        const error = Exit.findErrorOption(failed)
        return yield* Effect.fail(Option.isSome(error) ? error.value : new FarmBuildFailed({ drvPath: roots[0]!, kind: "error", reason: "failed", logTail: "" }))
      }
      return roots.map((drvPath): SubmitResult => {
        const exit = results.get(drvPath)!
        const value = Exit.isSuccess(exit) ? exit.value : { outputs: {}, status: "built" as const }
        return { drvPath, outputs: value.outputs, status: value.status }
      })
    }
    yield* Effect.sleep(pollMs)
  }
})

/** Copies the outputs of finished roots from the cache into the local store. */
export const substitute = (results: ReadonlyArray<SubmitResult>, options: Pick<SubmitOptions, "local" | "cache" | "trustedKeys">) => Effect.gen(function*() {
  const storeDir = options.local.read.storeDir
  const paths = results.flatMap((r) => Object.values(r.outputs)).flatMap((p) => {
    const parsed = StorePath.parse(p, storeDir)
    return parsed._tag === "Success" ? [parsed.success] : []
  })
  yield* copyPaths(options.cache.read, options.local, paths, { trustedKeys: options.trustedKeys })
})

/** Submits, watches and substitutes (or, with `detach`, only submits: the results are then empty). */
export const submit = (
  drvPaths: ReadonlyArray<StorePath.StorePath>,
  options: SubmitOptions
): Effect.Effect<{ readonly submission: string; readonly results: ReadonlyArray<SubmitResult> }, FarmBuildFailed | StoreError | SubmissionNotFound | Error, WorkflowEngine | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const { submission, started } = yield* start(drvPaths, options)
    if (options.detach) {
      yield* started
      return { submission, results: [] }
    }
    const results = yield* watch(submission, options)
    yield* trace("the roots finished")
    yield* started
    if (options.substitute ?? true) yield* substitute(results, options)
    yield* trace("substituted the outputs")
    return { submission, results }
  }) as never

/** Re-attaches to a submission: watches it to the end and substitutes its outputs. */
export const attach = (submission: string, options: Omit<SubmitOptions, "submission" | "detach">) => Effect.gen(function*() {
  const results = yield* watch(submission, options)
  if (options.substitute ?? true) yield* substitute(results, options)
  return { submission, results }
})
