/**
 * A pack written straight into its file, for blob stores that keep blobs as local files: each
 * batch's payloads are written where they go in the pack (positional writev on libuv's threads)
 * from the buffers they are in — the batch slots the chunk workers used — so this thread never
 * copies them. The file has a temporary name (`.tmp-<pid>-…`, what a store removes when its writer is
 * gone) until the pack is sealed: then it is made durable and renamed into place, so readers never
 * see a partial pack.
 */
import { randomBytes } from "node:crypto"
import { closeSync, fdatasync, mkdirSync, openSync, rename, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { writevAt } from "../../nar/fs/index.ts"

export class PackFile {
  readonly #fd: number
  readonly #target: string
  readonly #tmp: string
  readonly #writes: Array<Promise<void>> = []
  #queued: Array<Uint8Array> = []
  #queuedAt = 0
  #failure: unknown = undefined
  #closed = false

  /** Opens a new temporary file beside `target` (the pack's blob file). */
  constructor(target: string) {
    this.#target = target
    mkdirSync(dirname(target), { recursive: true })
    this.#tmp = join(dirname(target), `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`)
    this.#fd = openSync(this.#tmp, "w")
  }

  /** Queues `payload` to be written at `offset` (right after the last one queued); it must stay as it is until `write`'s promise settles. */
  queue(payload: Uint8Array, offset: number): void {
    if (this.#queued.length === 0) this.#queuedAt = offset
    this.#queued.push(payload)
  }

  /** Starts writing what was queued; settles (never rejects: a failure is told by `finish`) once it is written. */
  write(): Promise<void> {
    const views = this.#queued
    this.#queued = []
    if (views.length === 0) return Promise.resolve()
    const done = writevAt(this.#fd, views, this.#queuedAt).catch((e) => { this.#failure ??= e })
    this.#writes.push(done)
    return done
  }

  /** Writes what is left, waits for every write, makes the file durable and renames it to its target. */
  async finish(): Promise<void> {
    this.write()
    await Promise.all(this.#writes)
    if (this.#failure !== undefined) throw this.#failure
    await new Promise<void>((resolve, reject) => fdatasync(this.#fd, (e) => e ? reject(e) : resolve()))
    this.#close()
    await new Promise<void>((resolve, reject) => rename(this.#tmp, this.#target, (e) => e ? reject(e) : resolve()))
  }

  /** Gives up the file (after a failure): closed and removed once its writes have settled. */
  async discard(): Promise<void> {
    this.#queued = []
    await Promise.all(this.#writes)
    this.#close()
    rmSync(this.#tmp, { force: true })
  }

  #close(): void {
    if (this.#closed) return
    this.#closed = true
    closeSync(this.#fd)
  }
}
