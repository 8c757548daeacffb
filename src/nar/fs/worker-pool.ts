/**
 * Worker threads that run directory jobs (dir-job.ts) in parallel with the coordinating thread.
 * One pool per process, started on first need; idle workers do not keep the process alive
 * (thread-pool.ts). The workers run from source text (the job runner and NarWriter serialised
 * with toString), so this works the same from TypeScript sources, tests and the esbuild bundle.
 */
import { availableParallelism } from "node:os"
import { directoryJobRunner, type DirJob, type DirJobResult, type JobLimits } from "./dir-job.ts"
import { narWriterClass } from "../nar-writer.ts"
import { ThreadPool } from "./thread-pool.ts"

// getBuiltinModule, not require: the eval'd source is ESM when the parent runs with --input-type=module
const workerSource = (limits: JobLimits): string => `
const fs = process.getBuiltinModule("node:fs")
const { parentPort } = process.getBuiltinModule("node:worker_threads")
const NarWriter = (${narWriterClass.toString()})()
const run = (${directoryJobRunner.toString()})(fs, NarWriter, ${JSON.stringify(limits)})
parentPort.on("message", ({ id, job, buffer }) => {
  let result
  try {
    result = run(job, buffer)
  } catch (e) {
    result = { segments: [], failure: { type: "io", path: String(job.dir), operation: "dumping", code: "EUNKNOWN", message: String(e && e.message || e) } }
  }
  const transfer = new Set()
  for (const s of result.segments) if (s instanceof Uint8Array) transfer.add(s.buffer)
  parentPort.postMessage({ id, result }, [...transfer])
})
`

/** Jobs a worker may have queued at once (one running, one waiting hides the message round trip). */
const perWorker = 2

type Reply = { readonly id: number; readonly result: DirJobResult }

/** Directory jobs on worker threads (the mechanism is thread-pool.ts's; the protocol is `{ id, job, buffer }` → `{ id, result }`). */
export class WorkerPool {
  readonly size: number
  private readonly threads: ThreadPool<Reply>

  constructor(size: number, limits: JobLimits) {
    this.size = size
    this.threads = new ThreadPool<Reply>({
      size,
      source: workerSource(limits),
      // a worker that died is not the tree's fault: the coordinator runs the job itself on EWORKER
      failed: (reason) => ({ id: -1, result: { segments: [], failure: { type: "io", path: "", operation: "running a dump worker", code: "EWORKER", message: reason } } }),
      // big files' descriptors are opened in the workers and closed by the coordinator
      trackUnmanagedFds: false
    })
  }

  /** Starts the workers (idempotent); they report ready asynchronously. */
  start(): void { this.threads.start() }

  get started(): boolean { return this.threads.started }

  /** Resolves once every worker has come online or failed (after `start`); the workers keep the process alive meanwhile. */
  whenReady(): Promise<void> { return this.threads.whenReady() }

  /** Whether a worker can take a job now (the coordinator runs jobs itself when none can). */
  get hasIdle(): boolean { return this.threads.pick(perWorker, true) !== undefined }

  /** Runs the job on an idle worker (call only when `hasIdle`); `buffer` is moved to it for the output. */
  run(job: DirJob, buffer?: ArrayBuffer): Promise<DirJobResult> {
    const slot = this.threads.pick(perWorker, true)!
    return this.threads.send(slot, { job, buffer }, buffer ? [buffer] : []).then((reply) => reply.result)
  }
}

const shared = new Map<number, WorkerPool>()

/**
 * The process-wide pool of `size` workers (made on first request; the limits of the first call
 * win). The default is one worker per core but one: the coordinating thread runs jobs too.
 */
export const sharedPool = (limits: JobLimits, size = Math.max(1, Math.min(4, availableParallelism() - 1))): WorkerPool => {
  let pool = shared.get(size)
  if (pool === undefined) {
    pool = new WorkerPool(size, limits)
    shared.set(size, pool)
  }
  return pool
}
