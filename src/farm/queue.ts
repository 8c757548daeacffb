/**
 * The farm's scheduling state in SQL: which derivations wait for which inputs, and the build queue.
 *
 * A derivation's workflow enqueues one job. The job is `blocked` while an input derivation is not
 * built yet, `queued` once all are; runners claim queued jobs. Whoever finishes a derivation (the
 * runner that built it, or the workflow that found it cached or failed it) does so in one
 * transaction that also releases the jobs now ready (blocked → queued) or, after a failure, fails
 * the jobs that depend on it, transitively. So a dependency never waits for a workflow to be woken:
 * the next job is claimable the moment the transaction commits.
 *
 * The transactions that enqueue and finish take one lock (a PostgreSQL advisory lock; SQLite's
 * `BEGIN IMMEDIATE` serialises writers anyway), so a job is never enqueued as blocked on an input
 * that finished in between. They are short: a few statements.
 *
 * Every workflow waits on exactly one durable deferred (`build`), completed from the job's stored
 * result; `reconcile` completes it again for jobs whose workflow has not recorded a result, so a
 * wake-up the workflow engine loses is repaired from these tables.
 */
import { Effect, Exit, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
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

export const failedWith = (drvPath: string, kind: FarmBuildFailed["kind"], reason: string) =>
  new FarmBuildFailed({ drvPath, kind, reason, logTail: "" })

const ExitJson = Schema.toCodecJson(Schema.Exit(DerivationResult, FarmBuildFailed, Schema.Defect()))
const encodeExit = Schema.encodeSync(ExitJson)
const decodeExit = Schema.decodeUnknownSync(ExitJson)

export type DerivationExit = Exit.Exit<DerivationResult, FarmBuildFailed>

export const exitToJson = (exit: DerivationExit): string => JSON.stringify(encodeExit(exit))
export const exitFromJson = (json: string): DerivationExit => decodeExit(JSON.parse(json)) as DerivationExit

/** The stored result of a derivation, if it has finished. */
export const storedResult = (row: { readonly state: string; readonly result: string | null }): Option.Option<DerivationExit> =>
  row.state === "pending" || !row.result ? Option.none() : Option.some(exitFromJson(row.result))

export const notifyChannel = "b3_farm_jobs"

/** NOTIFY idle runners that a job was queued (PostgreSQL); a no-op elsewhere. */
export const notifyQueued = Effect.gen(function*() {
  const pg = yield* Effect.serviceOption(PgClient.PgClient)
  if (Option.isSome(pg)) yield* Effect.ignore(pg.value.notify(notifyChannel, ""))
})

/** Takes the scheduler's lock for the rest of the transaction. */
const lockScheduler = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({ pg: () => Effect.asVoid(sql`SELECT pg_advisory_xact_lock(730017)`), orElse: () => Effect.void })

/** Runs `effect` in a transaction holding the scheduler's lock (rows several submitters write at once). */
export const withSchedulerLock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Db.withSql((sql) => Db.transaction(sql, Effect.andThen(lockScheduler(sql), effect)))

export interface NewJob {
  readonly drv: string
  readonly epoch: number
  readonly system: string
  readonly features: ReadonlyArray<string>
  readonly submission: string
  /** The durable deferred token the workflow waits on. */
  readonly token: string
  readonly execution: string
  readonly deps: ReadonlyArray<string>
}

/**
 * Enqueues a derivation's job: queued if every input is built, blocked otherwise, not at all if an
 * input failed (that input is returned). Idempotent (a job per derivation and epoch).
 */
export const enqueue = (job: NewJob) => Db.withSql((sql) => Db.transaction(sql, Effect.gen(function*() {
  yield* lockScheduler(sql)
  const t = Db.now()
  yield* sql`INSERT INTO farm_derivations (drv, epoch, state, execution, submission, updated_at) VALUES (${job.drv}, ${job.epoch}, 'pending', ${job.execution}, ${job.submission}, ${t})
    ON CONFLICT (drv) DO UPDATE SET execution = ${job.execution}`
  const deps = [...new Set(job.deps)].sort()
  const states = new Map<string, string>()
  if (deps.length > 0) {
    for (const dep of deps) {
      yield* sql`INSERT INTO farm_derivations (drv, epoch, state, updated_at) VALUES (${dep}, 0, 'pending', ${t}) ON CONFLICT (drv) DO NOTHING`
    }
    for (const row of yield* sql<{ drv: string; state: string }>`SELECT drv, state FROM farm_derivations WHERE ${sql.in("drv", deps)}`) states.set(row.drv, row.state)
    const failed = deps.find((d) => states.get(d) === "failed")
    if (failed !== undefined) return { failedDep: failed, queued: false }
    for (const dep of deps) yield* sql`INSERT INTO farm_deps (drv, dep) VALUES (${job.drv}, ${dep}) ON CONFLICT (drv, dep) DO NOTHING`
  }
  const ready = deps.every((d) => states.get(d) === "done")
  const inserted = yield* sql<{ state: string }>`INSERT INTO farm_jobs (drv, epoch, system, features, submission, token, execution, state, queued_at)
    VALUES (${job.drv}, ${job.epoch}, ${job.system}, ${Db.joinList(job.features)}, ${job.submission}, ${job.token}, ${job.execution}, ${ready ? "queued" : "blocked"}, ${t})
    ON CONFLICT (drv, epoch) DO NOTHING RETURNING state`
  if (inserted.length > 0) yield* Db.event(job.drv, ready ? "queued" : "waiting")
  return { failedDep: undefined, queued: ready && inserted.length > 0 }
})))

/** A job failed because one of its inputs did: the token its workflow waits on, and the exit to complete it with. */
export interface Cascaded {
  readonly drv: string
  readonly token: string
  readonly exit: DerivationExit
}

export interface Finished {
  /** Whether this call decided the derivation's result (it was pending). */
  readonly decided: boolean
  /** Jobs that became ready. */
  readonly released: ReadonlyArray<string>
  /** Jobs failed because this derivation (or, transitively, another of them) failed. */
  readonly cascaded: ReadonlyArray<Cascaded>
}

/**
 * Finishes a derivation, inside the caller's transaction or a new one: stores its result if it was
 * still pending, marks it recorded (`recorded`: its workflow is done with it), and releases or fails
 * the jobs that depend on it.
 */
export const finish = (drv: string, epoch: number, exit: DerivationExit, options: { readonly recorded?: boolean } = {}) =>
  Db.withSql((sql) => Db.transaction(sql, Effect.gen(function*() {
    yield* lockScheduler(sql)
    const t = Db.now()
    const state = Exit.isSuccess(exit) ? "done" : "failed"
    const recorded = options.recorded ? 1 : 0
    yield* sql`INSERT INTO farm_derivations (drv, epoch, state, updated_at) VALUES (${drv}, ${epoch}, 'pending', ${t}) ON CONFLICT (drv) DO NOTHING`
    const decided = yield* sql<{ drv: string }>`UPDATE farm_derivations SET state = ${state}, result = ${exitToJson(exit)}, updated_at = ${t}
      WHERE drv = ${drv} AND epoch = ${epoch} AND state = 'pending' RETURNING drv`
    if (recorded) yield* sql`UPDATE farm_derivations SET recorded = 1 WHERE drv = ${drv} AND epoch = ${epoch}`
    if (decided.length === 0) return { decided: false, released: [], cascaded: [] } satisfies Finished
    if (state === "done") {
      const released = yield* sql<{ drv: string }>`UPDATE farm_jobs SET state = 'queued', queued_at = ${t}
        WHERE state = 'blocked' AND drv IN (SELECT drv FROM farm_deps WHERE dep = ${drv})
        AND NOT EXISTS (SELECT 1 FROM farm_deps d WHERE d.drv = farm_jobs.drv
          AND NOT EXISTS (SELECT 1 FROM farm_derivations x WHERE x.drv = d.dep AND x.state = 'done'))
        RETURNING drv`
      for (const r of released) yield* Db.event(r.drv, "queued")
      return { decided: true, released: released.map((r) => r.drv), cascaded: [] } satisfies Finished
    }
    // a failure fails everything that waits for it, transitively
    const cascaded: Array<Cascaded> = []
    let frontier = [drv]
    while (frontier.length > 0) {
      const failed = yield* sql<{ drv: string; epoch: number; token: string }>`UPDATE farm_jobs SET state = 'failed', finished_at = ${t}
        WHERE state = 'blocked' AND drv IN (SELECT drv FROM farm_deps WHERE ${sql.in("dep", frontier)}) RETURNING drv, epoch, token`
      const next: Array<string> = []
      for (const job of failed) {
        const culprit = frontier.length === 1 ? frontier[0]! : "an input"
        const jobExit: DerivationExit = Exit.fail(failedWith(job.drv, "dependency", `dependency '${culprit}' failed`))
        const json = exitToJson(jobExit)
        yield* sql`UPDATE farm_jobs SET result = ${json} WHERE drv = ${job.drv} AND epoch = ${job.epoch}`
        yield* sql`UPDATE farm_derivations SET state = 'failed', result = ${json}, updated_at = ${t} WHERE drv = ${job.drv} AND state = 'pending'`
        yield* Db.event(job.drv, "failed", undefined, `dependency '${culprit}' failed`)
        cascaded.push({ drv: job.drv, token: job.token, exit: jobExit })
        next.push(job.drv)
      }
      frontier = next
    }
    return { decided: true, released: [], cascaded } satisfies Finished
  })))

/** Jobs that finished a while ago whose workflow has not recorded the result: their wake-up may have been lost. */
export const unrecorded = (olderThanMs: number, limit = 100) => Db.withSql((sql) =>
  sql<{ drv: string; epoch: number; token: string; execution: string; submission: string; result: string }>`SELECT j.drv, j.epoch, j.token, j.execution, j.submission, j.result
    FROM farm_jobs j JOIN farm_derivations d ON d.drv = j.drv AND d.epoch = j.epoch
    WHERE j.state IN ('done', 'failed') AND j.result IS NOT NULL AND d.recorded = 0 AND j.finished_at < ${Db.now() - olderThanMs}
    ORDER BY j.finished_at LIMIT ${limit}`)

/** Derivations a submitter started that have neither a job nor a result after a while: their workflow may be stuck. */
export const unstarted = (olderThanMs: number, limit = 100) => Db.withSql((sql) =>
  sql<{ drv: string; epoch: number; execution: string; submission: string | null }>`SELECT d.drv, d.epoch, d.execution, d.submission FROM farm_derivations d
    WHERE d.state = 'pending' AND d.execution IS NOT NULL AND d.updated_at < ${Db.now() - olderThanMs}
    AND NOT EXISTS (SELECT 1 FROM farm_jobs j WHERE j.drv = d.drv AND j.epoch = d.epoch)
    ORDER BY d.updated_at LIMIT ${limit}`)

/** Marks a derivation as looked at now (so `unstarted` does not return it again at once). */
export const touch = (drv: string) => Db.withSql((sql) => sql`UPDATE farm_derivations SET updated_at = ${Db.now()} WHERE drv = ${drv} AND state = 'pending'`)

export interface Claimed extends Db.JobRow {
  readonly claimedAt: number
}

/**
 * A runner claims the next queued job it can build (its system among `systems`, its required
 * features a subset of `features`): from the submission with the fewest builds running (fair
 * sharing between submitters: a small graph is not stuck behind a big one), then the oldest job.
 * The job is leased to the runner for `leaseMs`. Two runners racing for a job: one wins, the other
 * takes the next.
 */
export const claim = (runner: string, systems: ReadonlySet<string>, features: ReadonlySet<string>, leaseMs: number) => Db.withSql((sql) => Effect.gen(function*() {
  const candidates = yield* sql<Db.JobRow>`SELECT j.seq, j.drv, j.epoch, j.system, j.features, j.submission, j.token, j.state, j.runner, j.lease_until, j.attempts
    FROM farm_jobs j LEFT JOIN (SELECT submission, COUNT(*) AS n FROM farm_jobs WHERE state = 'running' GROUP BY submission) r ON r.submission = j.submission
    WHERE j.state = 'queued' ORDER BY COALESCE(r.n, 0), j.seq LIMIT 200`
  for (const job of candidates) {
    if (!Db.canRun(job, systems, features)) continue
    const t = Db.now()
    const taken = yield* sql<{ drv: string }>`UPDATE farm_jobs SET state = 'running', runner = ${runner}, lease_until = ${t + leaseMs},
      attempts = attempts + 1, started_at = ${t} WHERE drv = ${job.drv} AND epoch = ${job.epoch} AND state = 'queued' RETURNING drv`
    if (taken.length > 0) return Option.some<Claimed>({ ...job, claimedAt: t })
  }
  return Option.none<Claimed>()
}))
