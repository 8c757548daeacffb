/**
 * Worker threads that run directory jobs (dir-job.ts) in parallel with the coordinating thread.
 * One pool per process, started on first need; idle workers do not keep the process alive.
 * The workers run from source text (the job runner and NarWriter serialised with toString), so
 * this works the same from TypeScript sources, tests and the esbuild bundle.
 */
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import { directoryJobRunner, type DirJob, type DirJobResult, type JobLimits } from "./dir-job.ts"
import { narWriterClass } from "../nar-writer.ts"

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

interface Slot {
  readonly worker: Worker
  ready: boolean
  busy: number
}

type Waiter = { readonly slot: Slot; readonly resolve: (r: DirJobResult) => void }

/** Jobs a worker may have queued at once (one running, one waiting hides the message round trip). */
const perWorker = 2

export class WorkerPool {
  readonly size: number
  private readonly limits: JobLimits
  private readonly slots: Array<Slot> = []
  private readonly waiters = new Map<number, Waiter>()
  private nextId = 0
  /** workers that came online or failed, and who waits for all of them */
  private settled = 0
  private readonly readyWaiters: Array<() => void> = []

  constructor(size: number, limits: JobLimits) {
    this.size = size
    this.limits = limits
  }

  /** Starts the workers (idempotent); they report ready asynchronously. */
  start(): void {
    if (this.slots.length > 0) return
    const source = workerSource(this.limits)
    for (let i = 0; i < this.size; i++) {
      // trackUnmanagedFds off: big files' descriptors are opened here and closed by the coordinator
      const worker = new Worker(source, { eval: true, trackUnmanagedFds: false })
      const slot: Slot = { worker, ready: false, busy: 0 }
      let counted = false
      const settle = () => {
        if (counted) return
        counted = true
        if (++this.settled === this.size) for (const resolve of this.readyWaiters.splice(0)) resolve()
      }
      worker.on("online", () => { slot.ready = true; settle() })
      worker.on("message", (msg: { id: number; result: DirJobResult }) => {
        const waiter = this.waiters.get(msg.id)
        if (!waiter) return
        this.waiters.delete(msg.id)
        if (--slot.busy === 0) worker.unref()
        waiter.resolve(msg.result)
      })
      const fail = (reason: string) => {
        slot.ready = false // never picked again: the coordinator runs jobs itself when no worker is idle
        settle()
        for (const [id, waiter] of this.waiters) {
          if (waiter.slot !== slot) continue
          this.waiters.delete(id)
          waiter.resolve({ segments: [], failure: { type: "io", path: "", operation: "running a dump worker", code: "EWORKER", message: reason } })
        }
      }
      worker.on("error", (e) => fail(String(e?.message ?? e)))
      worker.on("exit", (code) => fail(`worker exited with code ${code}`))
      worker.unref() // after the listeners: adding a message listener refs the worker again
      this.slots.push(slot)
    }
  }

  get started(): boolean { return this.slots.length > 0 }

  /** Resolves once every worker has come online or failed (after `start`); the workers keep the process alive meanwhile. */
  whenReady(): Promise<void> {
    if (this.settled === this.size) return Promise.resolve()
    for (const slot of this.slots) slot.worker.ref()
    return new Promise((resolve) => this.readyWaiters.push(() => {
      for (const slot of this.slots) if (slot.busy === 0) slot.worker.unref()
      resolve()
    }))
  }

  /** A worker that can take a job now, if any. */
  private idleSlot(): Slot | undefined {
    let best: Slot | undefined
    for (const s of this.slots) if (s.ready && s.busy < perWorker && (best === undefined || s.busy < best.busy)) best = s
    return best
  }

  get hasIdle(): boolean { return this.idleSlot() !== undefined }

  /** Runs the job on an idle worker (call only when `hasIdle`); `buffer` is moved to it for the output. */
  run(job: DirJob, buffer?: ArrayBuffer): Promise<DirJobResult> {
    const slot = this.idleSlot()!
    const id = this.nextId++
    if (slot.busy++ === 0) slot.worker.ref()
    return new Promise((resolve) => {
      this.waiters.set(id, { slot, resolve })
      slot.worker.postMessage({ id, job, buffer }, buffer ? [buffer] : [])
    })
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
