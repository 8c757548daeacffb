/**
 * The pool mechanism both worker pools share (worker-pool.ts for dumping, file-writer-pool.ts for
 * restoring): worker threads started from source text (so this works the same from the
 * TypeScript sources, tests and the esbuild bundle), requests matched to replies by id, the least
 * busy live worker picked, a worker that dies answering its outstanding requests with a failure
 * (and never picked again), and idle workers unref'd so they do not keep the process alive. Each
 * pool keeps its own message protocol: the worker answers a message `{ id, … }` with `{ id, … }`.
 */
import { Worker, type ResourceLimits } from "node:worker_threads"

export interface ThreadSlot {
  readonly worker: Worker
  /** came online (messages to a worker not yet online wait in its queue) */
  online: boolean
  dead: boolean
  busy: number
}

type Waiter<Reply> = { readonly slot: ThreadSlot; readonly resolve: (reply: Reply) => void }

export interface ThreadPoolOptions<Reply> {
  readonly size: number
  /** The worker's source (evaluated as a module or a script: use `process.getBuiltinModule`, not require). */
  readonly source: string
  /** What a request gets when its worker died before answering. */
  readonly failed: (reason: string) => Reply
  /** Sees every reply first, even one nobody waits for any more (e.g. to take back a transferred buffer). */
  readonly onReply?: (reply: Reply) => void
  readonly resourceLimits?: ResourceLimits
  /** Off when descriptors opened on one thread are closed on another. */
  readonly trackUnmanagedFds?: boolean
}

export class ThreadPool<Reply extends { readonly id: number }> {
  readonly size: number
  private readonly options: ThreadPoolOptions<Reply>
  private readonly slots: Array<ThreadSlot> = []
  private readonly waiters = new Map<number, Waiter<Reply>>()
  private nextId = 0
  /** workers that came online or failed, and who waits for all of them */
  private settled = 0
  private readonly readyWaiters: Array<() => void> = []

  constructor(options: ThreadPoolOptions<Reply>) {
    this.options = options
    this.size = options.size
  }

  get started(): boolean { return this.slots.length > 0 }

  /** Starts the workers (idempotent); they come online asynchronously. */
  start(): void {
    if (this.slots.length > 0) return
    const { source, resourceLimits, trackUnmanagedFds } = this.options
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(source, {
        eval: true,
        ...(resourceLimits ? { resourceLimits } : {}),
        ...(trackUnmanagedFds === undefined ? {} : { trackUnmanagedFds })
      })
      const slot: ThreadSlot = { worker, online: false, dead: false, busy: 0 }
      let counted = false
      const settle = () => {
        if (counted) return
        counted = true
        if (++this.settled === this.size) for (const resolve of this.readyWaiters.splice(0)) resolve()
      }
      worker.on("online", () => { slot.online = true; settle() })
      worker.on("message", (reply: Reply) => {
        this.options.onReply?.(reply)
        const waiter = this.waiters.get(reply.id)
        if (!waiter) return
        this.waiters.delete(reply.id)
        if (--slot.busy === 0) worker.unref()
        waiter.resolve(reply)
      })
      const fail = (reason: string) => {
        slot.dead = true
        settle()
        for (const [id, waiter] of this.waiters) {
          if (waiter.slot !== slot) continue
          this.waiters.delete(id)
          waiter.resolve(this.options.failed(reason))
        }
      }
      worker.on("error", (e) => fail(String(e?.message ?? e)))
      worker.on("exit", (code) => fail(`exit code ${code}`))
      worker.unref() // after the listeners: adding a message listener refs the worker again
      this.slots.push(slot)
    }
  }

  /** Resolves once every worker has come online or failed (after `start`); the workers keep the process alive meanwhile. */
  whenReady(): Promise<void> {
    if (this.settled === this.size) return Promise.resolve()
    for (const slot of this.slots) slot.worker.ref()
    return new Promise((resolve) => this.readyWaiters.push(() => {
      for (const slot of this.slots) if (slot.busy === 0) slot.worker.unref()
      resolve()
    }))
  }

  /** The first worker, if it is alive (for messages that must all reach one worker, in order). */
  first(): ThreadSlot | undefined {
    const s = this.slots[0]
    return s && !s.dead ? s : undefined
  }

  /**
   * The least busy live worker with fewer than `maxBusy` requests outstanding (only those already
   * online with `onlineOnly`), or undefined.
   */
  pick(maxBusy = Infinity, onlineOnly = false): ThreadSlot | undefined {
    let best: ThreadSlot | undefined
    for (const s of this.slots) {
      if (s.dead || (onlineOnly && !s.online) || s.busy >= maxBusy) continue
      if (best === undefined || s.busy < best.busy) best = s
    }
    return best
  }

  /** Sends `message` (with a fresh id) to the worker; resolves with its reply, or `failed(reason)` if it dies first. */
  send(slot: ThreadSlot, message: object, transfer: ReadonlyArray<ArrayBuffer> = []): Promise<Reply> {
    const id = this.nextId++
    if (slot.busy++ === 0) slot.worker.ref()
    return new Promise((resolve) => {
      this.waiters.set(id, { slot, resolve })
      slot.worker.postMessage({ ...message, id }, transfer as Array<ArrayBuffer>)
    })
  }
}
