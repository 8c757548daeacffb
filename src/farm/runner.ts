/**
 * A farm runner: a member of the cluster that hosts derivation workflows (whichever shards it is
 * given) and builds jobs from the queue.
 *
 * The queue is pulled, not pushed: a runner with a free slot claims the next job it can build —
 * its system among the runner's, its required features a subset of the runner's — taking first
 * the submission with the fewest builds running (fair sharing between submitters), then the oldest
 * job. A claimed job carries a lease that the runner renews while it works; a runner that dies
 * stops renewing, and any runner puts its jobs back in the queue once the lease has run out.
 *
 * A job: `fetch` the .drv closure and the inputs' outputs from the shared cache into the runner's
 * local store (signatures checked), `build` in the local sandbox, `push` the outputs to the shared
 * cache signed with the farm's key (each path's narinfo only after its whole NAR: nothing partial
 * is ever visible), then complete the workflow's `build` deferred. Each attempt is a build record
 * (running → succeeded | failed | lost | skipped); a job whose outputs the cache already has (a
 * runner died after pushing) is completed without building.
 */
import { hostname } from "node:os"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Queue, Ref, Result, Schedule, Scope, Semaphore } from "effect"
import { SqlClient } from "effect/sql"
import { DurableDeferred } from "effect/workflow"
import type { WorkflowEngine } from "effect/workflow/WorkflowEngine"
import { PgClient } from "@effect/sql-pg"
import * as Signature from "../core/signature.ts"
import * as StorePath from "../core/store-path.ts"
import { readDerivation } from "../build/derivation-graph.ts"
import { copyPaths } from "../services/copy.ts"
import type { StoreBuildApi } from "../services/store-build.ts"
import type { StoreReadApi } from "../services/store-read.ts"
import type { StoreWriteApi } from "../services/store-write.ts"
import * as Db from "./db.ts"
import { BuildDone, FarmBuildFailed, derivationWorkflowLayer } from "./workflow.ts"

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
  /** How often an idle runner looks for jobs without being woken (default 250 ms). */
  readonly pollMs?: number | undefined
  readonly cores?: number | undefined
  readonly log?: ((line: string) => void) | undefined
}

export interface RunnerStores {
  readonly cache: { readonly read: StoreReadApi; readonly write: StoreWriteApi }
  readonly local: { readonly read: StoreReadApi; readonly write: StoreWriteApi; readonly build: StoreBuildApi }
}

const notifyChannel = "b3_farm_jobs"

/** NOTIFY idle runners that a job was queued (PostgreSQL); a no-op elsewhere. */
export const notifyQueued = Effect.gen(function*() {
  const pg = yield* Effect.serviceOption(PgClient.PgClient)
  if (Option.isSome(pg)) yield* Effect.ignore(pg.value.notify(notifyChannel, ""))
})

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

/** The runner's work: registration and heartbeat, the lease sweeper, and the job slots. */
export const runnerProgram = (config: RunnerConfig, stores: RunnerStores) => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const log = config.log ?? (() => {})
  const leaseMs = config.leaseMs ?? 10_000
  const pollMs = config.pollMs ?? 250
  const storeDir = stores.cache.read.storeDir
  const trusted = [...config.trustedKeys, ...(config.secretKey ? [Signature.publicKeyOf(config.secretKey)] : [])]
  const systems = new Set(config.systems)
  const features = new Set(config.features)
  const retry = <A, E, R>(e: Effect.Effect<A, E, R>) => e.pipe(Effect.retry({ schedule: Db.sqlRetry, times: 30 }))

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

  // Jobs this process is working on (drv → completed when its lease is lost); their leases are renewed together.
  // A job whose lease ran out anyway (this process stalled) was given to another runner: its build here stops.
  const running = new Map<string, Deferred.Deferred<void>>()
  const renew = Effect.gen(function*() {
    const t = Db.now()
    yield* sql`UPDATE farm_runners SET heartbeat_at = ${t} WHERE id = ${config.id}`
    if (running.size === 0) return
    const held = new Set((yield* sql<{ drv: string }>`UPDATE farm_jobs SET lease_until = ${t + leaseMs} WHERE runner = ${config.id} AND state = 'running' RETURNING drv`).map((r) => r.drv))
    for (const [drv, lost] of running) if (!held.has(drv)) yield* Deferred.succeed(lost, undefined)
  })
  yield* renew.pipe(Effect.ignore, Effect.repeat(Schedule.spaced(Math.max(200, Math.floor(leaseMs / 4)))), Effect.forkScoped)

  // Jobs whose lease ran out (their runner died or hung) go back to the queue; their build records are lost.
  const sweep = Effect.gen(function*() {
    const t = Db.now()
    const expired = yield* sql<{ drv: string }>`UPDATE farm_jobs SET state = 'queued', runner = NULL, lease_until = NULL
      WHERE state = 'running' AND lease_until < ${t} RETURNING drv`
    for (const job of expired) {
      yield* sql`UPDATE farm_builds SET status = 'lost', finished_at = ${t}, message = 'the runner stopped renewing its lease' WHERE drv = ${job.drv} AND status = 'running'`
      yield* Db.event(job.drv, "requeued", undefined, "the runner building it went away")
      log(`requeued ${job.drv} (lease expired)`)
    }
  })
  yield* sweep.pipe(Effect.ignore, Effect.repeat(Schedule.spaced(Math.max(200, Math.floor(leaseMs / 4)))), Effect.forkScoped)

  // Idle slots wait for a wake-up: a NOTIFY (PostgreSQL), a finished job, or the poll interval.
  const wake = yield* Ref.make(yield* Deferred.make<void>())
  const signal = Effect.flatMap(Ref.getAndSet(wake, Deferred.makeUnsafe<void>()), (d) => Deferred.succeed(d, undefined))
  const pg = yield* Effect.serviceOption(PgClient.PgClient)
  if (Option.isSome(pg)) {
    yield* Effect.gen(function*() {
      const queue = yield* pg.value.listen(notifyChannel)
      while (true) {
        yield* Queue.take(queue)
        yield* signal
      }
    }).pipe(Effect.scoped, Effect.retry(Schedule.spaced("1 second")), Effect.ignore, Effect.forkScoped)
  }

  const claim = Effect.gen(function*() {
    const candidates = yield* sql<Db.JobRow>`SELECT j.seq, j.drv, j.epoch, j.system, j.features, j.submission, j.token, j.state, j.runner, j.lease_until, j.attempts
      FROM farm_jobs j LEFT JOIN (SELECT submission, COUNT(*) AS n FROM farm_jobs WHERE state = 'running' GROUP BY submission) r ON r.submission = j.submission
      WHERE j.state = 'queued' ORDER BY COALESCE(r.n, 0), j.seq LIMIT 200`
    for (const job of candidates) {
      if (!Db.canRun(job, systems, features)) continue
      const t = Db.now()
      const taken = yield* sql<{ drv: string }>`UPDATE farm_jobs SET state = 'running', runner = ${config.id}, lease_until = ${t + leaseMs},
        attempts = attempts + 1, started_at = ${t} WHERE drv = ${job.drv} AND epoch = ${job.epoch} AND state = 'queued' RETURNING drv`
      if (taken.length > 0) return Option.some(job)
    }
    return Option.none<Db.JobRow>()
  })

  const fetchInputs = (drvPath: StorePath.StorePath) => Effect.gen(function*() {
    yield* copyPaths(stores.cache.read, stores.local, [drvPath], { trustedKeys: trusted })
    const drv = yield* readDerivation(stores.local.read, drvPath)
    const inputs: Array<StorePath.StorePath> = []
    for (const [input, names] of drv.inputDrvs) {
      const inputDrv = yield* readDerivation(stores.local.read, yield* parsePath(input, storeDir))
      for (const name of names) {
        const output = inputDrv.outputs.get(name)
        if (output && "path" in output) inputs.push(yield* parsePath(output.path, storeDir))
      }
    }
    if (inputs.length > 0) yield* copyPaths(stores.cache.read, stores.local, inputs, { trustedKeys: trusted })
    return drv
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

  const runJob = (job: Db.JobRow) => Effect.gen(function*() {
    const t0 = Db.now()
    const [record] = yield* retry(sql<{ id: number }>`INSERT INTO farm_builds (drv, runner, status, started_at) VALUES (${job.drv}, ${config.id}, 'running', ${t0}) RETURNING id`)
    const buildId = Number(record!.id)
    const leaseLost = yield* Deferred.make<void>()
    running.set(job.drv, leaseLost)
    const finish = (status: string, message: string | null) => retry(sql.withTransaction(Effect.gen(function*() {
      yield* sql`UPDATE farm_builds SET status = ${status}, finished_at = ${Db.now()}, message = ${message} WHERE id = ${buildId}`
      yield* sql`UPDATE farm_jobs SET state = ${status === "failed" ? "failed" : "done"}, finished_at = ${Db.now()}, lease_until = NULL
        WHERE drv = ${job.drv} AND epoch = ${job.epoch} AND runner = ${config.id}`
    })))
    const sink = logSink(job.drv)
    let timings = ""
    const flusher = yield* sink.flush.pipe(Effect.repeat(Schedule.spaced("200 millis")), Effect.forkChild)
    const work = Effect.gen(function*() {
      const drvPath = yield* parsePath(job.drv, storeDir)
      const outputsOf = (drv: { readonly outputs: ReadonlyMap<string, { readonly _tag: string }> }) => {
        const outputs: Record<string, string> = {}
        for (const [name, output] of drv.outputs) if ("path" in output) outputs[name] = output.path as string
        return outputs
      }
      // A job claimed again (its runner went away) may have been pushed already: then there is nothing to build.
      if (Number(job.attempts) + 1 > 1) {
        const outputs = outputsOf(yield* readDerivation(stores.cache.read, drvPath))
        const outputPaths = yield* Effect.forEach(Object.values(outputs), (p) => parsePath(p, storeDir))
        if ((yield* stores.cache.read.queryValidPaths(outputPaths)).length === outputPaths.length) return { outputs, skipped: true }
      }
      yield* retry(Db.event(job.drv, "building", config.id))
      log(`building ${job.drv}`)
      const t1 = Db.now()
      const outputs = outputsOf(yield* fetchInputs(drvPath))
      const outputPaths = yield* Effect.forEach(Object.values(outputs), (p) => parsePath(p, storeDir))
      const t2 = Db.now()
      yield* stores.local.build.buildDerivations([drvPath], { maxJobs: 1, cores: config.cores, onLog: (_, chunk) => sink.write(chunk) })
      const t3 = Db.now()
      yield* copyPaths(stores.local.read, stores.cache, outputPaths, { checkSigs: false, signWith: config.secretKey ? [config.secretKey] : [] })
      timings = `claim→start ${t1 - t0} ms, fetch ${t2 - t1} ms, build ${t3 - t2} ms, push ${Db.now() - t3} ms`
      return { outputs, skipped: false }
    })
    const exit = yield* Effect.exit(Effect.raceFirst(work, Effect.andThen(Deferred.await(leaseLost), Effect.fail("lease-lost" as const))))
    yield* Fiber.interrupt(flusher)
    yield* sink.flush
    running.delete(job.drv)
    const token = job.token as DurableDeferred.Token
    if (Exit.isFailure(exit) && Option.getOrUndefined(Exit.findErrorOption(exit)) === "lease-lost") {
      yield* retry(sql`UPDATE farm_builds SET status = 'lost', finished_at = ${Db.now()}, message = 'its lease ran out: another runner took it over' WHERE id = ${buildId}`)
      log(`gave up ${job.drv}: lease lost`)
      return
    }
    if (Exit.isSuccess(exit)) {
      const { outputs, skipped } = exit.value
      yield* finish(skipped ? "skipped" : "succeeded", skipped ? "the cache had the outputs already" : null)
      yield* retry(Db.event(job.drv, skipped ? "cached" : "built", config.id, `${Db.now() - t0} ms`))
      log(`${skipped ? "found" : "built"} ${job.drv} in ${Db.now() - t0} ms${timings ? ` (${timings})` : ""}`)
      yield* DurableDeferred.done(BuildDone, { token, exit: Exit.succeed(outputs) })
      return
    }
    if (Exit.hasInterrupts(exit)) {
      // Stopping: give the job back at once rather than waiting for the lease to run out.
      yield* Effect.ignore(sql.withTransaction(Effect.gen(function*() {
        yield* sql`UPDATE farm_builds SET status = 'lost', finished_at = ${Db.now()}, message = 'the runner stopped' WHERE id = ${buildId}`
        yield* sql`UPDATE farm_jobs SET state = 'queued', runner = NULL, lease_until = NULL WHERE drv = ${job.drv} AND epoch = ${job.epoch} AND runner = ${config.id}`
      })))
      yield* notifyQueued
      return
    }
    const failure = asFailure(job.drv, Option.getOrElse(Exit.findErrorOption(exit), () => Exit.isFailure(exit) ? exit.cause : "build failed"))
    yield* finish("failed", failure.reason)
    yield* retry(Db.event(job.drv, "failed", config.id, failure.reason))
    log(`failed ${job.drv}: ${failure.reason}`)
    yield* DurableDeferred.done(BuildDone, { token, exit: Exit.fail(failure) })
  })

  const slots = yield* Semaphore.make(config.maxJobs)
  const scope = yield* Effect.scope
  const dispatcher = Effect.gen(function*() {
    while (true) {
      yield* slots.take(1)
      const waitFor = yield* Ref.get(wake)
      const job = yield* Effect.catch(claim, (e) => Effect.as(Effect.logWarning(`claiming a job failed: ${e.message}`), Option.none<Db.JobRow>()))
      if (Option.isNone(job)) {
        yield* slots.release(1)
        yield* Effect.raceFirst(Deferred.await(waitFor), Effect.sleep(pollMs))
        continue
      }
      yield* runJob(job.value).pipe(
        Effect.catchCause((cause) => Effect.logError(`job ${job.value.drv}: ${cause}`)),
        Effect.ensuring(Effect.andThen(slots.release(1), signal)),
        Effect.forkIn(scope))
    }
  })
  yield* dispatcher.pipe(Effect.forkScoped)
  log(`runner ${config.id} ready: systems ${[...systems].join(",")}, features ${[...features].join(",") || "none"}, ${config.maxJobs} jobs`)
})

/** Everything a runner process runs, given its cluster layer and stores: the workflow handler and the runner program. */
export const runnerLayer = (config: RunnerConfig, stores: RunnerStores) =>
  Layer.mergeAll(
    derivationWorkflowLayer({ cache: stores.cache.read, notifyQueued }),
    Layer.effectDiscard(runnerProgram(config, stores))
  )

export type { WorkflowEngine, Scope }
