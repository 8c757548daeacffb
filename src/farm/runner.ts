/**
 * A farm runner: a member of the cluster that hosts derivation workflows (whichever shards it is
 * given) and builds jobs from the queue (src/farm/queue.ts).
 *
 * The queue is pulled, not pushed: a runner with a free slot claims the next job it can build —
 * its system among the runner's, its required features a subset of the runner's — taking first
 * the submission with the fewest builds running (fair sharing between submitters), then the oldest
 * job. A claimed job carries a lease that the runner renews while it works; a runner that dies
 * stops renewing, and any runner puts its jobs back in the queue once the lease has run out.
 *
 * A job: `fetch` the .drv closure and the inputs' outputs from the shared cache into the runner's
 * local store (signatures checked; only what the local store lacks), `build` in the local sandbox,
 * `push` the outputs to the shared cache signed with the farm's key (each path's narinfo only after
 * its whole NAR: nothing partial is ever visible), then finish: one transaction stores the result
 * and releases the jobs that were waiting for it, and the workflow's `build` deferred is completed.
 * The runner claims one job beyond its build slots and fetches its inputs while the slots build,
 * and pushes outside the slots, so a slot goes from one build to the next without waiting for the
 * cache. Each attempt is a build record (running → succeeded | failed | lost | skipped); a job
 * whose outputs the cache already has (a runner died after pushing) is finished without building.
 *
 * Every runner also reconciles: jobs finished a while ago whose workflow has not recorded the
 * result get their wake-up again, and workflows that never enqueued are resumed or restarted, so
 * no derivation waits on a message the workflow engine lost.
 */
import { hostname } from "node:os"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Queue, Ref, Result, Schedule, Semaphore } from "effect"
import { SqlClient } from "effect/sql"
import { DurableDeferred } from "effect/workflow"
import { PgClient } from "@effect/sql-pg"
import * as Signature from "../core/signature.ts"
import * as StorePath from "../core/store-path.ts"
import { readDerivation } from "../build/derivation-graph.ts"
import { copyPaths } from "../services/copy.ts"
import type { StoreError } from "../services/store-errors.ts"
import type { StoreBuildApi } from "../services/store-build.ts"
import type { StoreReadApi } from "../services/store-read.ts"
import type { StoreWriteApi } from "../services/store-write.ts"
import * as Db from "./db.ts"
import * as Jobs from "./queue.ts"
import { notifyChannel, notifyQueued } from "./queue.ts"
import { BuildDone, DerivationWorkflow, FarmBuildFailed, derivationWorkflowLayer, wakeCascaded } from "./workflow.ts"

export interface RunnerConfig {
  /** This runner's id (default: host:port). */
  readonly id: string
  readonly systems: ReadonlyArray<string>
  readonly features: ReadonlyArray<string>
  readonly maxJobs: number
  /** Signs outputs pushed to the cache (the farm's key). */
  readonly secretKey?: Signature.SecretKey | undefined
  /** Keys trusted for what the runner fetches from the cache (the farm's public key is added). */
  readonly trustedKeys: ReadonlyArray<Signature.PublicKey>
  /** The shared cache's URI, published for submitters. */
  readonly cacheUri: string
  /** How long a claimed job stays leased without renewal (default 10 s). */
  readonly leaseMs?: number | undefined
  /** How often an idle runner looks for jobs without being woken (default 1 s with PostgreSQL's NOTIFY, else 100 ms). */
  readonly pollMs?: number | undefined
  /** How long a finished job's workflow may take to record it before the wake-up is repeated (default 30 s). */
  readonly reconcileMs?: number | undefined
  /**
   * For tests: the wake-ups of this many of the first jobs the runner finishes are not sent, as if
   * the workflow engine had lost them (the reconciler must repair them).
   */
  readonly dropWakeups?: number | undefined
  readonly cores?: number | undefined
  readonly log?: ((line: string) => void) | undefined
}

export interface RunnerStores {
  readonly cache: { readonly read: StoreReadApi; readonly write: StoreWriteApi }
  readonly local: { readonly read: StoreReadApi; readonly write: StoreWriteApi; readonly build: StoreBuildApi }
}

export { notifyQueued }

const asFailure = (drvPath: string, e: unknown): FarmBuildFailed => {
  if (e instanceof FarmBuildFailed) return e
  const error = e as { _tag?: string; reason?: string; logTail?: string; message?: string }
  if (error._tag === "BuildFailed") return new FarmBuildFailed({ drvPath, kind: "build", reason: error.reason ?? "failed", logTail: error.logTail ?? "" })
  return new FarmBuildFailed({ drvPath, kind: error._tag === "OutputHashMismatch" ? "build" : "error", reason: error.message ?? String(e), logTail: "" })
}

const parsePath = (path: string, storeDir: string) => {
  const parsed = StorePath.parse(path, storeDir)
  return Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(parsed.failure)
}

/**
 * The paths of `roots`' closure in `from` that `to` lacks. A path valid in a store has its whole
 * closure there, so the walk stops at the first path the target has: a runner that built the
 * graph's lower layers fetches only the new .drv and the new outputs.
 */
const missingClosure = (from: StoreReadApi, to: StoreReadApi, roots: ReadonlyArray<StorePath.StorePath>): Effect.Effect<Array<StorePath.StorePath>, StoreError> =>
  Effect.gen(function*() {
    const seen = new Set<string>()
    const missing: Array<StorePath.StorePath> = []
    let frontier = roots.filter((p) => !seen.has(StorePath.baseName(p)) && seen.add(StorePath.baseName(p)))
    while (frontier.length > 0) {
      const present = new Set((yield* to.queryValidPaths(frontier)).map((p) => StorePath.baseName(p)))
      const absent = frontier.filter((p) => !present.has(StorePath.baseName(p)))
      missing.push(...absent)
      const infos = yield* Effect.forEach(absent, (p) => from.queryPathInfo(p), { concurrency: 16 })
      frontier = infos.flatMap((info) => info.references).filter((p) => !seen.has(StorePath.baseName(p)) && seen.add(StorePath.baseName(p)))
    }
    return missing
  })

/** The advisory lock class of runners' liveness locks (the second key is the runner id's hash). */
const livenessLockClass = 730018
/** With liveness locks, a live runner's job is taken from it only after its lease has been out this long. */
const hungMs = 5 * 60_000

/** Puts a runner's running jobs (or one of them) back in the queue; their build records are lost. */
const requeueOf = (sql: SqlClient.SqlClient, runner: string, why: string, log: (line: string) => void, drv?: string) => Effect.gen(function*() {
  const t = Db.now()
  const jobs = yield* sql<{ drv: string }>`UPDATE farm_jobs SET state = 'queued', runner = NULL, lease_until = NULL
    WHERE state = 'running' AND runner = ${runner} ${drv === undefined ? sql`` : sql`AND drv = ${drv}`} RETURNING drv`
  for (const job of jobs) {
    yield* sql`UPDATE farm_builds SET status = 'lost', finished_at = ${t}, message = ${why} WHERE drv = ${job.drv} AND runner = ${runner} AND status = 'running'`
    yield* Db.event(job.drv, "requeued", undefined, why)
    log(`requeued ${job.drv} of ${runner}: ${why}`)
  }
  return jobs.length
})

type Claimed = Jobs.Claimed

/** The runner's work: registration and heartbeat, the lease sweeper, the reconciler and the job slots. */
export const runnerProgram = (config: RunnerConfig, stores: RunnerStores) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const log = config.log ?? (() => {})
  const leaseMs = config.leaseMs ?? 10_000
  const reconcileMs = config.reconcileMs ?? 30_000
  let dropWakeups = config.dropWakeups ?? 0
  const storeDir = stores.cache.read.storeDir
  const trusted = [...config.trustedKeys, ...(config.secretKey ? [Signature.publicKeyOf(config.secretKey)] : [])]
  const systems = new Set(config.systems)
  const features = new Set(config.features)
  const retry = <A, E, R>(e: Effect.Effect<A, E, R>) => e.pipe(Effect.retry({ schedule: Db.sqlRetry, times: 30 }))
  const pg = yield* Effect.serviceOption(PgClient.PgClient)
  const pollMs = config.pollMs ?? (Option.isSome(pg) ? 1000 : 100)

  yield* retry(Db.migrate)
  yield* retry(Db.setConfig("cache", config.cacheUri))
  if (config.secretKey) yield* retry(Db.setConfig("public-key", Signature.printPublicKey(Signature.publicKeyOf(config.secretKey))))

  // Registration and heartbeat; a clean stop marks the runner stopped.
  const started = Db.now()
  yield* retry(sql`INSERT INTO farm_runners (id, host, systems, features, max_jobs, pid, started_at, heartbeat_at, stopped_at)
    VALUES (${config.id}, ${hostname()}, ${Db.joinList(systems)}, ${Db.joinList(features)}, ${config.maxJobs}, ${process.pid}, ${started}, ${started}, NULL)
    ON CONFLICT (id) DO UPDATE SET host = ${hostname()}, systems = ${Db.joinList(systems)}, features = ${Db.joinList(features)}, max_jobs = ${config.maxJobs},
      pid = ${process.pid}, started_at = ${started}, heartbeat_at = ${started}, stopped_at = NULL`)
  yield* Effect.addFinalizer(() => Effect.ignore(sql`UPDATE farm_runners SET stopped_at = ${Db.now()} WHERE id = ${config.id}`))

  // PostgreSQL: the runner holds a session lock named after its id for as long as it lives. A runner
  // that dies (SIGKILL, lost machine) loses its connection and with it the lock, so the others see at
  // once that its jobs are orphaned, however slow a live runner is to renew its leases.
  const locking = Option.isSome(pg)
  if (locking) {
    const connection = yield* sql.reserve
    const tryLock = connection.execute("SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked", [livenessLockClass, config.id], undefined)
    const locked = yield* tryLock.pipe(
      Effect.flatMap((rows) => (rows[0] as { locked: boolean }).locked ? Effect.void : Effect.fail("held" as const)),
      Effect.retry({ schedule: Schedule.spaced("500 millis"), times: 20 }),
      Effect.as(true), Effect.catch(() => Effect.succeed(false)))
    if (!locked) return yield* Effect.die(new Error(`another runner with the id '${config.id}' is running on this farm`))
    // Jobs a previous run of this runner held are orphans.
    yield* requeueOf(sql, config.id, "the runner was restarted", log)
  }

  // Jobs this process holds (drv → completed when its lease is lost); their leases are renewed together.
  // A job whose lease ran out anyway (this process stalled) was given to another runner: its build here stops.
  const held = new Map<string, Deferred.Deferred<void>>()
  const renew = Effect.gen(function*() {
    const t = Db.now()
    yield* sql`UPDATE farm_runners SET heartbeat_at = ${t} WHERE id = ${config.id}`
    if (held.size === 0) return
    // only jobs held before the renewal are checked: one claimed meanwhile is not in its answer
    const before = [...held]
    const kept = new Set((yield* sql<{ drv: string }>`UPDATE farm_jobs SET lease_until = ${t + leaseMs} WHERE runner = ${config.id} AND state = 'running' RETURNING drv`).map((r) => r.drv))
    for (const [drv, lost] of before) if (!kept.has(drv) && held.get(drv) === lost) yield* Deferred.succeed(lost, undefined)
  })
  yield* renew.pipe(Effect.ignore, Effect.repeat(Schedule.spaced(Math.max(200, Math.floor(leaseMs / 4)))), Effect.forkScoped)

  // Idle slots wait for a wake-up: a NOTIFY (PostgreSQL), a finished job, or the poll interval.
  const wake = yield* Ref.make(yield* Deferred.make<void>())
  // a fresh deferred per signal (one made once would stay completed, and idle slots would spin on the queue)
  const signal = Effect.flatMap(Deferred.make<void>(), (next) => Effect.flatMap(Ref.getAndSet(wake, next), (d) => Deferred.succeed(d, undefined)))
  if (Option.isSome(pg)) {
    yield* Effect.gen(function*() {
      const queue = yield* pg.value.listen(notifyChannel)
      while (true) {
        yield* Queue.take(queue)
        yield* signal
      }
    }).pipe(Effect.scoped, Effect.retry(Schedule.spaced("1 second")), Effect.ignore, Effect.forkScoped)
  }
  const notify = Effect.andThen(notifyQueued, signal)

  // Jobs of a runner that died (PostgreSQL: its lock is free) or hung (its lease ran out long ago; with
  // SQLite: its lease ran out) go back to the queue; their build records are lost.
  const sweep = Effect.gen(function*() {
    let requeued = 0
    if (locking) {
      const others = yield* sql<{ runner: string }>`SELECT DISTINCT runner FROM farm_jobs WHERE state = 'running' AND runner <> ${config.id}`
      for (const { runner } of others) {
        requeued += yield* Db.transaction(sql, Effect.gen(function*() {
          const [free] = yield* sql<{ free: boolean }>`SELECT pg_try_advisory_xact_lock(${livenessLockClass}, hashtext(${runner})) AS free`
          return free?.free ? yield* requeueOf(sql, runner, "the runner building it went away", log) : 0
        }))
      }
    }
    const t = Db.now()
    const expired = yield* sql<{ drv: string; runner: string }>`SELECT drv, runner FROM farm_jobs WHERE state = 'running' AND lease_until < ${locking ? t - hungMs : t}`
    for (const job of expired) requeued += yield* requeueOf(sql, job.runner, locking ? "the runner building it stopped renewing its lease" : "the runner building it went away", log, job.drv)
    if (requeued > 0) yield* notify
  })
  yield* sweep.pipe(Effect.ignore, Effect.repeat(Schedule.spaced(Math.max(200, Math.floor(leaseMs / 4)))), Effect.forkScoped)

  // Wake-ups the workflow engine lost are repeated from the tables (idempotent: a deferred completes once).
  const reconcile = Effect.gen(function*() {
    for (const job of yield* Jobs.unrecorded(reconcileMs)) {
      // the workflow may never have been started (its submitter died first), or its wake-up was lost
      yield* DerivationWorkflow.execute({ drvPath: job.drv, epoch: Number(job.epoch), submission: job.submission }, { discard: true })
      yield* DurableDeferred.done(BuildDone, { token: job.token as DurableDeferred.Token, exit: Jobs.exitFromJson(job.result) })
      yield* DerivationWorkflow.resume(job.execution)
      yield* sql`UPDATE farm_jobs SET finished_at = ${Db.now()} WHERE drv = ${job.drv} AND epoch = ${job.epoch}`
      log(`reconcile: woke the workflow of ${job.drv} again`)
    }
    for (const d of yield* Jobs.unstarted(3 * reconcileMs)) {
      yield* Jobs.touch(d.drv)
      const result = yield* DerivationWorkflow.poll(d.execution)
      if (Option.isNone(result)) {
        yield* DerivationWorkflow.execute({ drvPath: d.drv, epoch: Number(d.epoch), submission: d.submission ?? "reconcile" }, { discard: true })
        log(`reconcile: started the workflow of ${d.drv} again`)
      } else if (result.value._tag === "Suspended") {
        yield* DerivationWorkflow.resume(d.execution)
        log(`reconcile: resumed the workflow of ${d.drv}`)
      } else {
        const finished = yield* Jobs.finish(d.drv, Number(d.epoch), result.value.exit, { recorded: true })
        yield* wakeCascaded(finished.cascaded)
        if (finished.released.length > 0) yield* notify
        log(`reconcile: recorded the result of ${d.drv}`)
      }
    }
  })
  yield* reconcile.pipe(
    Effect.catchCause((cause) => Effect.logWarning("reconciling failed", cause)),
    Effect.repeat(Schedule.spaced(Math.max(500, Math.floor(reconcileMs / 2)))), Effect.forkScoped)

  const claim = Jobs.claim(config.id, systems, features, leaseMs)

  /** The .drv closure and the inputs' outputs, from the cache into the local store; gives the outputs. */
  const fetchInputs = (drvPath: StorePath.StorePath) => Effect.gen(function*() {
    const missingDrvs = yield* missingClosure(stores.cache.read, stores.local.read, [drvPath])
    if (missingDrvs.length > 0) yield* copyPaths(stores.cache.read, stores.local, missingDrvs, { closure: false, trustedKeys: trusted })
    const drv = yield* readDerivation(stores.local.read, drvPath)
    const inputs: Array<StorePath.StorePath> = []
    for (const [input, names] of drv.inputDrvs) {
      const inputDrv = yield* readDerivation(stores.local.read, yield* parsePath(input, storeDir))
      for (const name of names) {
        const output = inputDrv.outputs.get(name)
        if (output && "path" in output) inputs.push(yield* parsePath(output.path, storeDir))
      }
    }
    const missingInputs = yield* missingClosure(stores.cache.read, stores.local.read, inputs)
    if (missingInputs.length > 0) yield* copyPaths(stores.cache.read, stores.local, missingInputs, { closure: false, trustedKeys: trusted })
    const outputs: Record<string, string> = {}
    for (const [name, output] of drv.outputs) if ("path" in output) outputs[name] = output.path as string
    return outputs
  })

  /** Log lines go to the database in batches, for submitters to stream. */
  const logSink = (drvPath: string) => {
    const decoder = new TextDecoder()
    let pending = ""
    const flush = Effect.suspend(() => {
      if (pending.length === 0) return Effect.void
      const chunk = pending
      pending = ""
      return Effect.ignore(sql`INSERT INTO farm_logs (drv, chunk) VALUES (${drvPath}, ${chunk})`)
    })
    return { write: (bytes: Uint8Array) => { pending += decoder.decode(bytes, { stream: true }) }, flush }
  }

  // Claims: one more than the build slots, so the next job's inputs arrive while the slots build.
  const claims = yield* Semaphore.make(config.maxJobs + 1)
  const slots = yield* Semaphore.make(config.maxJobs)

  const runJob = (job: Claimed) => Effect.gen(function*() {
    const t0 = job.claimedAt
    const [record] = yield* retry(sql<{ id: number }>`INSERT INTO farm_builds (drv, runner, status, started_at) VALUES (${job.drv}, ${config.id}, 'running', ${t0}) RETURNING id`)
    const buildId = Number(record!.id)
    const leaseLost = yield* Deferred.make<void>()
    held.set(job.drv, leaseLost)
    let claimHeld = true
    const releaseClaim = Effect.suspend(() => {
      if (!claimHeld) return Effect.void
      claimHeld = false
      return Effect.andThen(claims.release(1), signal)
    })
    const sink = logSink(job.drv)
    let timings = ""
    const work = Effect.gen(function*() {
      const drvPath = yield* parsePath(job.drv, storeDir)
      // A job claimed again (its runner went away) may have been pushed already: then there is nothing to build.
      if (Number(job.attempts) + 1 > 1) {
        const drv = yield* readDerivation(stores.cache.read, drvPath)
        const outputs: Record<string, string> = {}
        for (const [name, output] of drv.outputs) if ("path" in output) outputs[name] = output.path as string
        const outputPaths = yield* Effect.forEach(Object.values(outputs), (p) => parsePath(p, storeDir))
        if ((yield* stores.cache.read.queryValidPaths(outputPaths)).length === outputPaths.length) return { outputs, skipped: true }
      }
      const outputs = yield* fetchInputs(drvPath)
      const outputPaths = yield* Effect.forEach(Object.values(outputs), (p) => parsePath(p, storeDir))
      const t1 = Db.now()
      const t2 = yield* slots.withPermits(1)(Effect.gen(function*() {
        const t2 = Db.now()
        // the event is written while the build starts (not a round trip of the slot's time); joined before the result
        const building = yield* Effect.forkChild(Effect.ignore(Db.event(job.drv, "building", config.id)), { startImmediately: true })
        log(`building ${job.drv}`)
        const flusher = yield* sink.flush.pipe(Effect.repeat(Schedule.spaced("250 millis")), Effect.forkChild)
        yield* stores.local.build.buildDerivations([drvPath], {
          // the features the runner offers are the builder's (it claims only jobs that need no others)
          maxJobs: 1, cores: config.cores, systemFeatures: [...features], onLog: (_, chunk) => sink.write(chunk)
        }).pipe(
          Effect.ensuring(Fiber.interrupt(flusher)))
        yield* Fiber.join(building)
        return t2
      }).pipe(Effect.ensuring(releaseClaim)))
      const t3 = Db.now()
      yield* copyPaths(stores.local.read, stores.cache, outputPaths, { checkSigs: false, signWith: config.secretKey ? [config.secretKey] : [] })
      timings = `fetch ${t1 - t0} ms, wait ${t2 - t1} ms, build ${t3 - t2} ms from ${t2}, push ${Db.now() - t3} ms`
      return { outputs, skipped: false }
    })
    const exit = yield* Effect.exit(Effect.raceFirst(work, Effect.andThen(Deferred.await(leaseLost), Effect.fail("lease-lost" as const))))
    yield* releaseClaim
    yield* sink.flush
    held.delete(job.drv)
    if (Exit.isFailure(exit) && Option.getOrUndefined(Exit.findErrorOption(exit)) === "lease-lost") {
      yield* retry(Db.transaction(sql, Effect.gen(function*() {
        yield* sql`UPDATE farm_builds SET status = 'lost', finished_at = ${Db.now()}, message = 'its lease ran out: another runner took it over' WHERE id = ${buildId}`
        // if it is still ours after all, it goes back to the queue
        yield* sql`UPDATE farm_jobs SET state = 'queued', runner = NULL, lease_until = NULL WHERE drv = ${job.drv} AND epoch = ${job.epoch} AND runner = ${config.id} AND state = 'running'`
      })))
      yield* notify
      log(`gave up ${job.drv}: lease lost`)
      return
    }
    if (Exit.hasInterrupts(exit) && !Exit.isSuccess(exit)) {
      // Stopping: give the job back at once rather than waiting for the lease to run out.
      yield* Effect.ignore(Db.transaction(sql, Effect.gen(function*() {
        yield* sql`UPDATE farm_builds SET status = 'lost', finished_at = ${Db.now()}, message = 'the runner stopped' WHERE id = ${buildId}`
        yield* sql`UPDATE farm_jobs SET state = 'queued', runner = NULL, lease_until = NULL WHERE drv = ${job.drv} AND epoch = ${job.epoch} AND runner = ${config.id}`
      })))
      yield* notifyQueued
      return
    }
    const failure = Exit.isFailure(exit) ? asFailure(job.drv, Option.getOrElse(Exit.findErrorOption(exit), () => exit.cause)) : undefined
    const result: Jobs.DerivationExit = Exit.isSuccess(exit) ? Exit.succeed({ outputs: exit.value.outputs, status: "built" }) : Exit.fail(failure!)
    const status = Exit.isSuccess(exit) ? (exit.value.skipped ? "skipped" : "succeeded") : "failed"
    const message = Exit.isSuccess(exit) ? (exit.value.skipped ? "the cache had the outputs already" : null) : failure!.reason
    // One transaction: the build record, the job, the derivation's result, and the jobs it releases or fails.
    const finished = yield* retry(Jobs.withSchedulerLock(Effect.gen(function*() {
      const t = Db.now()
      const mine = yield* sql<{ drv: string }>`UPDATE farm_jobs SET state = ${status === "failed" ? "failed" : "done"}, result = ${Jobs.exitToJson(result)},
        finished_at = ${t}, lease_until = NULL WHERE drv = ${job.drv} AND epoch = ${job.epoch} AND runner = ${config.id} AND state = 'running' RETURNING drv`
      if (mine.length === 0) {
        // the job was given to another runner meanwhile: this attempt does not count
        yield* sql`UPDATE farm_builds SET status = 'lost', finished_at = ${t}, message = 'another runner took the job over' WHERE id = ${buildId}`
        return undefined
      }
      yield* sql`UPDATE farm_builds SET status = ${status}, finished_at = ${t}, message = ${message} WHERE id = ${buildId}`
      yield* Db.event(job.drv, status === "failed" ? "failed" : status === "skipped" ? "cached" : "built", config.id, status === "failed" ? message ?? undefined : `${t - t0} ms`)
      return yield* Jobs.finish(job.drv, Number(job.epoch), result)
    })))
    if (finished === undefined) {
      log(`gave up ${job.drv}: another runner holds it`)
      return
    }
    if (finished.released.length > 0) yield* notify
    log(`${status === "failed" ? `failed ${job.drv}: ${message}` : `${status === "skipped" ? "found" : "built"} ${job.drv} in ${Db.now() - t0} ms${timings ? ` (${timings})` : ""}`}`)
    if (dropWakeups > 0) {
      dropWakeups--
      log(`test: not waking the workflow of ${job.drv}`)
    } else {
      yield* DurableDeferred.done(BuildDone, { token: job.token as DurableDeferred.Token, exit: result })
    }
    yield* wakeCascaded(finished.cascaded)
  })

  const scope = yield* Effect.scope
  const dispatcher = Effect.gen(function*() {
    while (true) {
      yield* claims.take(1)
      const waitFor = yield* Ref.get(wake)
      const job = yield* Effect.catch(claim, (e) => Effect.as(Effect.logWarning(`claiming a job failed: ${e.message}`), Option.none<Claimed>()))
      if (Option.isNone(job)) {
        yield* claims.release(1)
        yield* Effect.raceFirst(Deferred.await(waitFor), Effect.sleep(pollMs))
        continue
      }
      yield* runJob(job.value).pipe(
        Effect.catchCause((cause) => Effect.logError(`job ${job.value.drv}: ${cause}`)),
        Effect.forkIn(scope))
    }
  })
  yield* dispatcher.pipe(Effect.forkScoped)
  log(`runner ${config.id} ready: systems ${[...systems].join(",")}, features ${[...features].join(",") || "none"}, ${config.maxJobs} jobs`)
})

/** Everything a runner process runs, given its cluster layer and stores: the workflow handler and the runner program. */
export const runnerLayer = (config: RunnerConfig, stores: RunnerStores) =>
  Layer.mergeAll(
    derivationWorkflowLayer({ cache: stores.cache.read, notifyQueued, log: config.log }),
    Layer.effectDiscard(runnerProgram(config, stores))
  )
