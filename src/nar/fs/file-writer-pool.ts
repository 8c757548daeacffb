/**
 * Worker threads that create small files in batches, so that a restore of many small files is not
 * one thread making every open/write/chmod/utimes/close call in turn (file creation is syscall-bound:
 * ~30 µs of kernel time a file, which threads spread over the cores). One pool per process, started
 * on first need; idle workers do not keep the process alive (thread-pool.ts). The workers run from
 * source text (the file writer serialised with toString), so this works the same from sources,
 * tests and the bundle.
 */
import * as fs from "node:fs"
import { availableParallelism } from "node:os"
import { ThreadPool } from "./thread-pool.ts"

/** A batch of small files: their paths and modes, and their contents back to back (`ends[i]` is where file i stops). */
export interface FileBatch {
  readonly paths: Array<Uint8Array>
  readonly executable: Array<boolean>
  readonly ends: Array<number>
  readonly bytes: Uint8Array
  /** store metadata: 0444/0555 and mtime 1 (else 0644/0755 and the current time) */
  readonly canonical: boolean
}

/** Why a batch failed: the failing call's errno code and message, and the file. */
export interface BatchFailure {
  readonly code: string
  readonly message: string
  readonly path: string
}

/**
 * Writes the files of a batch; the first failure stops it. Self-contained (no imports, no closure):
 * it also runs in the workers from its source text.
 */
export const writeFileBatch = (fsModule: typeof fs, batch: FileBatch): BatchFailure | undefined => {
  let start = 0
  for (let i = 0; i < batch.paths.length; i++) {
    const raw = batch.paths[i]!
    const path = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
    const executable = batch.executable[i]!
    const mode = batch.canonical ? (executable ? 0o555 : 0o444) : (executable ? 0o755 : 0o644)
    const end = batch.ends[i]!
    try {
      const fd = fsModule.openSync(path, "wx", mode)
      try {
        for (let off = start; off < end;) off += fsModule.writeSync(fd, batch.bytes, off, end - off)
        if (batch.canonical) {
          fsModule.fchmodSync(fd, mode) // whatever the umask took away
          fsModule.futimesSync(fd, 1, 1)
        } else if (executable) {
          fsModule.fchmodSync(fd, mode)
        }
      } finally {
        fsModule.closeSync(fd)
      }
    } catch (e) {
      const error = e as NodeJS.ErrnoException
      return { code: String(error.code ?? "EIO"), message: String(error.message ?? error), path: path.toString() }
    }
    start = end
  }
  return undefined
}

// getBuiltinModule, not require: the eval'd source is ESM when the parent runs with --input-type=module
const workerSource = `
const fs = process.getBuiltinModule("node:fs")
const { parentPort } = process.getBuiltinModule("node:worker_threads")
const write = (${writeFileBatch.toString()})
parentPort.on("message", ({ id, batch }) => {
  let failure
  try { failure = write(fs, batch) } catch (e) { failure = { code: "EIO", message: String(e && e.message || e), path: "" } }
  // the bytes go back for the next batch: no fresh memory per batch on either side
  parentPort.postMessage({ id, failure, bytes: batch.bytes }, [batch.bytes.buffer])
})
`

type Reply = { readonly id: number; readonly failure: BatchFailure | undefined; readonly bytes: Uint8Array }

/** Batches of small files on worker threads (the mechanism is thread-pool.ts's; the protocol is `{ id, batch }` → `{ id, failure, bytes }`). */
export class FileWriterPool {
  readonly size: number
  private readonly threads: ThreadPool<Reply>
  /** batch buffers the workers gave back */
  private readonly free: Array<Buffer> = []

  constructor(size: number) {
    this.size = size
    this.threads = new ThreadPool<Reply>({
      size,
      source: workerSource,
      failed: (reason) => ({ id: -1, failure: { code: "EWORKER", message: `a file-writing worker stopped: ${reason}`, path: "" }, bytes: new Uint8Array(0) }),
      onReply: (reply) => { if (this.free.length < maxFreeBuffers && reply.bytes.length > 0) this.free.push(Buffer.from(reply.bytes.buffer as ArrayBuffer)) },
      // a small young generation: the worker allocates little of its own, and its default heap growth cost ~10 MiB of RSS each
      resourceLimits: { maxYoungGenerationSizeMb: 2 }
    })
  }

  /** A buffer for a batch of up to `bytes` bytes (one a worker gave back, if it is big enough). */
  buffer(bytes: number): Buffer {
    const reused = this.free.pop()
    return reused !== undefined && reused.length >= bytes ? reused : Buffer.allocUnsafeSlow(bytes)
  }

  /** Writes the batch on the least busy worker (its bytes are moved there); resolves with its failure, if any. */
  write(batch: FileBatch): Promise<BatchFailure | undefined> {
    this.threads.start()
    const slot = this.threads.pick()
    if (slot === undefined) return Promise.resolve(writeFileBatch(fs, batch)) // every worker died: write here
    return this.threads.send(slot, { batch }, [batch.bytes.buffer as ArrayBuffer]).then((reply) => reply.failure)
  }
}

/** Batch buffers kept for reuse at most (a batch is ~0.5 MiB). */
const maxFreeBuffers = 8

let shared: FileWriterPool | undefined

/** The process-wide pool: one worker per core (the restoring thread mostly decodes and waits). */
export const fileWriterPool = (): FileWriterPool => (shared ??= new FileWriterPool(Math.max(1, Math.min(4, availableParallelism()))))
