/**
 * Restoring a NAR stream to a directory. Everything is written under a temporary name next to
 * the target and renamed into place only when the whole archive was valid; on any failure or
 * interruption the temporary tree is removed. Entry names come from the validating decoder (no
 * `/`, `.`, `..`, NUL, no duplicates), every directory is one this restore created, files are
 * created with O_EXCL and symlinks are created, never followed, so nothing can be written outside
 * the target.
 */
import { Duration, Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { chmodSync, closeSync, existsSync, fchmodSync, fdatasync, fstatSync, futimesSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, symlinkSync, writeSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { decodeNar, NarDecoder } from "../decode.ts"
import { fileWriterPool, type FileWriterPool } from "./file-writer-pool.ts"
import { ReadBuffers } from "./read-buffers.ts"
import { writevAt } from "./write-at.ts"
import { type BadNar } from "../errors.ts"
import { fsError, TargetExists, type NarIoError } from "./errors.ts"
import type { NarEvent } from "../events.ts"

const slash = Buffer.from("/")

/** Contents chunks at least this big are written on the thread pool, overlapping what comes next. */
const asyncWriteMin = 64 * 1024
/**
 * Smaller contents chunks (a NAR from a socket comes in pieces of a few KiB) are gathered and
 * written together, on the thread pool, once this many bytes (or `stagedChunksMax` chunks) are
 * gathered; what is left at the end of a file is written at once, here if it is small. (Gathered
 * pieces hold on to the socket's buffers until written. A daemon taking a 1 GiB NAR in Nix's 32 KiB
 * frames, fresh daemons alternating, without flushes: 256 KiB at a time 1.60-1.84 s and 1.22-1.60 s
 * of user CPU, 95-104 MiB; 512 KiB 1.75-1.93 s, 95-97 MiB; 128 KiB 1.99-2.41 s and 1.53-1.61 s,
 * 93 MiB; 1 MiB 2.46-2.76 s, 120-130 MiB: each write of 128 KiB cost the main thread ~35 us.)
 */
const stagedBytesMax = 256 * 1024
const stagedChunksMax = 1024
/** Background writes in flight at most. */
const maxWritesInFlight = 16
/** Bytes of one file written between background flushes to disk (so the final fsync has little left). */
const flushEvery = 64 << 20

/** Files a restore writes itself before it hands small files to the writer pool (small trees never start it). */
const inlineFilesMax = 256
/** Files up to this size go to the writer pool (in batches); bigger ones are written here. */
const pooledFileMax = 64 * 1024
/** A batch is sent once it holds this many bytes or files. */
const batchBytesMax = 512 * 1024
const batchFilesMax = 256
/** Batches of one restore in the pool at once. */
const maxBatchesInFlight = 4

let umaskBits: number | undefined
/** Whether the process's umask takes bits away from the modes files are created with (0444, 0555): then they are set again. */
const umaskStrips = (): boolean => ((umaskBits ??= process.umask()) & 0o555) !== 0

const call = <A>(f: (done: (error: NodeJS.ErrnoException | null, value?: A) => void) => void): Promise<A> =>
  new Promise((resolve, reject) => f((error, value) => (error ? reject(error) : resolve(value as A))))

/**
 * Writes events to the file system under `root`. Small things are synchronous calls (fastest for
 * many small files). With `overlapWrites` (the contents chunks are the writer's to keep), big chunks
 * are written on the thread pool while the caller goes on decoding and hashing, and big files are
 * flushed in the background as they grow. With `canonical`, everything is written with the metadata
 * Nix gives store contents (mtime 1; 0444, or 0555 if executable, and directories 0555 once their
 * last entry is in), so no second pass over the tree is needed. With `pool`, once a restore has
 * written a few hundred files, small files are gathered into batches that worker threads create
 * in parallel (directories are made here first; their final modes are set once all batches are in).
 */
class TreeWriter {
  readonly #stack: Array<Buffer> = []
  readonly #overlap: boolean
  readonly #flush: boolean
  readonly #canonical: boolean
  #pending: Buffer
  #fd = -1
  #executable = false
  #position = 0
  #writes: Array<Promise<void>> = []
  /** small contents chunks not written yet, from file offset `#stagedAt` on */
  #staged: Array<Uint8Array> = []
  #stagedBytes = 0
  #stagedAt = 0
  #flushing: Promise<void> | undefined
  #unflushed = 0
  readonly #pool: FileWriterPool | undefined
  #inlineFiles = 0
  /** the small files gathered for the pool, and where the current one's contents start in it */
  #batch: { paths: Array<Uint8Array>; executable: Array<boolean>; ends: Array<number>; bytes: Buffer; size: number } | undefined
  #gathering = -1
  #batches: Array<Promise<void>> = []
  /** directories ended while batches may still write into them: made read-only at the end */
  #endedDirs: Array<Buffer> = []

  constructor(root: string, options: WriterOptions) {
    this.#pending = Buffer.from(root)
    this.#overlap = options.overlapWrites
    this.#flush = options.flushBigFiles
    this.#canonical = options.canonical
    this.#pool = options.pool
  }

  /** Applies one event; a promise means: wait for it before the next event. */
  apply(event: NarEvent): Promise<void> | undefined {
    switch (event._tag) {
      case "Directory":
        mkdirSync(this.#pending, { mode: 0o755 })
        this.#stack.push(this.#pending)
        break
      case "Entry":
        this.#pending = Buffer.concat([this.#stack[this.#stack.length - 1]!, slash, event.name])
        break
      case "DirectoryEnd": {
        const dir = this.#stack.pop()!
        if (this.#canonical) {
          if (this.#batch || this.#batches.length > 0) this.#endedDirs.push(dir)
          else {
            chmodSync(dir, 0o555)
            lutimesSync(dir, 1, 1)
          }
        }
        break
      }
      case "File":
        this.#executable = event.executable
        this.#position = 0
        this.#unflushed = 0
        if (this.#pool && event.size <= pooledFileMax && this.#inlineFiles >= inlineFilesMax) {
          this.#gather(event.size)
          break
        }
        this.#inlineFiles++
        this.#fd = openSync(this.#pending, "wx", this.#canonical ? (event.executable ? 0o555 : 0o444) : (event.executable ? 0o755 : 0o644))
        break
      case "Contents": {
        const bytes = event.bytes
        if (this.#gathering >= 0) {
          this.#batch!.bytes.set(bytes, this.#batch!.size)
          this.#batch!.size += bytes.length
          break
        }
        const at = this.#position
        this.#position += bytes.length
        if (!this.#overlap) {
          writeAllSync(this.#fd, bytes, at)
          break
        }
        if (bytes.length >= asyncWriteMin) {
          const staged = this.#writeStaged()
          const wait = this.#writeInBackground([bytes], at)
          return staged && wait ? Promise.all([staged, wait]).then(() => undefined) : staged ?? wait
        }
        if (this.#staged.length === 0) this.#stagedAt = at
        this.#staged.push(bytes)
        this.#stagedBytes += bytes.length
        if (this.#stagedBytes >= stagedBytesMax || this.#staged.length >= stagedChunksMax) return this.#writeStaged()
        break
      }
      case "FileEnd": {
        if (this.#gathering >= 0) return this.#gathered()
        // the rest of a file: written here when it is small (a small file is one or two chunks)
        if (this.#stagedBytes < asyncWriteMin) {
          for (const chunk of this.#staged) { writeAllSync(this.#fd, chunk, this.#stagedAt); this.#stagedAt += chunk.length }
          this.#staged = []
          this.#stagedBytes = 0
        } else {
          const wait = this.#writeStaged()
          if (wait) return wait.then(() => this.#drain()).then(() => this.#endFile())
        }
        if (this.#writes.length > 0 || this.#flushing) return this.#drain().then(() => this.#endFile())
        this.#endFile()
        break
      }
      case "Symlink":
        symlinkSync(Buffer.from(event.target), this.#pending)
        if (this.#canonical) lutimesSync(this.#pending, 1, 1)
        break
    }
  }

  /** Starts gathering a small file (of `size` bytes) into the current batch. */
  #gather(size: number): void {
    if (this.#batch && this.#batch.size + size > this.#batch.bytes.length) this.#send()
    const batch = this.#batch ??= { paths: [], executable: [], ends: [], bytes: this.#pool!.buffer(batchBytesMax + pooledFileMax), size: 0 }
    this.#gathering = batch.size
  }

  /** The gathered file is complete: add it to the batch, and send the batch when it is full. */
  #gathered(): Promise<void> | undefined {
    const batch = this.#batch!
    batch.paths.push(this.#pending)
    batch.executable.push(this.#executable)
    batch.ends.push(batch.size)
    this.#gathering = -1
    if (batch.size < batchBytesMax && batch.paths.length < batchFilesMax) return undefined
    this.#send()
    return this.#batches.length > maxBatchesInFlight ? this.#batches.shift() : undefined
  }

  /** Hands the current batch to the pool; a failure is thrown where the batch is awaited. */
  #send(): void {
    const batch = this.#batch
    this.#batch = undefined
    if (!batch || batch.paths.length === 0) return
    const sent = this.#pool!.write({
      paths: batch.paths,
      executable: batch.executable,
      ends: batch.ends,
      bytes: batch.bytes.subarray(0, batch.size),
      canonical: this.#canonical
    }).then((failure) => {
      if (failure) throw Object.assign(new Error(failure.message), { code: failure.code, path: failure.path })
    })
    sent.catch(() => undefined) // seen when awaited; never an unhandled rejection
    this.#batches.push(sent)
  }

  /**
   * On success: sends the last batch, waits for all of them (the first failure is thrown), then
   * gives the directories ended meanwhile their final metadata, and closes.
   */
  async finish(): Promise<void> {
    this.#send()
    const batches = this.#batches
    this.#batches = []
    await Promise.all(batches)
    for (const dir of this.#endedDirs) {
      chmodSync(dir, 0o555)
      lutimesSync(dir, 1, 1)
    }
    this.#endedDirs = []
    await this.close()
  }

  #endFile(): void {
    if (this.#canonical) {
      if (umaskStrips()) fchmodSync(this.#fd, this.#executable ? 0o555 : 0o444) // whatever the umask took away
      futimesSync(this.#fd, 1, 1) // after the last write
    }
    closeSync(this.#fd)
    this.#fd = -1
    if (!this.#canonical && this.#executable) chmodSync(this.#pending, 0o755) // in case the umask removed x bits
  }

  /** Writes the gathered small chunks in the background (undefined when there are none, or no need to wait). */
  #writeStaged(): Promise<void> | undefined {
    if (this.#staged.length === 0) return undefined
    const chunks = this.#staged
    this.#staged = []
    this.#stagedBytes = 0
    return this.#writeInBackground(chunks, this.#stagedAt)
  }

  #writeInBackground(chunks: Array<Uint8Array>, at: number): Promise<void> | undefined {
    const fd = this.#fd
    let size = 0
    for (const chunk of chunks) size += chunk.length
    const written = writevAt(fd, chunks, at)
    written.catch(() => undefined) // seen when awaited; never an unhandled rejection
    this.#writes.push(written)
    this.#unflushed += size
    if (this.#flush && this.#unflushed >= flushEvery) {
      this.#unflushed = 0
      const before = [...this.#writes, this.#flushing]
      this.#flushing = Promise.all(before).then(() => call<void>((done) => fdatasync(fd, done)))
      this.#flushing.catch(() => undefined)
    }
    return this.#writes.length > maxWritesInFlight ? this.#writes.shift() : undefined
  }

  /**
   * Starts writing the chunks gathered so far, then settles once every background write started is
   * done (undefined when none is in flight): after that, the chunks given so far are not used again.
   */
  writesSoFar(): Promise<unknown> | undefined {
    this.#writeStaged()
    return this.#writes.length > 0 ? Promise.allSettled(this.#writes) : undefined
  }

  /** Waits for the background writes and flush of the current file; the first failure is thrown. */
  async #drain(): Promise<void> {
    const all = [...this.#writes, this.#flushing]
    this.#writes = []
    this.#flushing = undefined
    await Promise.all(all)
  }

  /** Applies a batch of events; a file-system failure comes back as a typed error. */
  applyAll(events: ReadonlyArray<NarEvent>, target: string): NarIoError | undefined | Promise<NarIoError | undefined> {
    try {
      for (let i = 0; i < events.length; i++) {
        const wait = this.apply(events[i]!)
        if (wait) return this.#applyRest(wait, events, i + 1, target)
      }
      return undefined
    } catch (e) {
      return fsError(e, "restore", target)
    }
  }

  async #applyRest(wait: Promise<void>, events: ReadonlyArray<NarEvent>, from: number, target: string): Promise<NarIoError | undefined> {
    try {
      await wait
      for (let i = from; i < events.length; i++) {
        const next = this.apply(events[i]!)
        if (next) await next
      }
      return undefined
    } catch (e) {
      return fsError(e, "restore", target)
    }
  }

  /** Closes the open file at once: only for a writer with nothing in the background (no overlap, no pool). */
  closeNow(): void {
    if (this.#fd >= 0) { try { closeSync(this.#fd) } catch { /* already closed */ } }
    this.#fd = -1
  }

  /** Closes the open file once no background write (or batch) can still use it. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#writes, this.#flushing, ...this.#batches])
    this.#staged = []
    this.#stagedBytes = 0
    this.#batches = []
    this.#writes = []
    this.#flushing = undefined
    if (this.#fd >= 0) { try { closeSync(this.#fd) } catch { /* already closed */ } }
    this.#fd = -1
  }
}

/** Writes all of `bytes` at `position` (a write may be short). */
const writeAllSync = (fd: number, bytes: Uint8Array, position: number): void => {
  let off = 0
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, position + off)
}

const makeDirsWritable = (path: string) => {
  try {
    if (!lstatSync(path).isDirectory()) return
    chmodSync(path, 0o755)
    for (const name of readdirSync(path)) makeDirsWritable(join(path, name))
  } catch { /* best effort */ }
}

const removeTree = (path: string) => {
  try { rmSync(path, { recursive: true, force: true }) } catch {
    // a canonical restore leaves finished directories read-only
    makeDirsWritable(path)
    try { rmSync(path, { recursive: true, force: true }) } catch { /* best effort: the name is unique */ }
  }
}

const isDanglingLink = (path: string) => {
  try { return lstatSync(path).isSymbolicLink() } catch { return false }
}

/**
 * Runs `fill` with a writer rooted at a fresh temporary name next to `target`, then renames it to
 * `target`; the temporary tree is removed if `fill` fails or is interrupted.
 */
interface WriterOptions {
  readonly overlapWrites: boolean
  /** flush big files to disk in the background as they grow (for the store, which fsyncs them before registering) */
  readonly flushBigFiles: boolean
  readonly canonical: boolean
  /** worker threads for small files (the contents chunks may be views of reused buffers: gathered files are copied) */
  readonly pool?: FileWriterPool
}

export interface RestoreOptions {
  /** Write store metadata (mtime 1, read-only modes) as the tree is made, as the local store wants it. */
  readonly canonical?: boolean
  /**
   * Write at `target` itself rather than under a temporary name renamed at the end: for a caller
   * whose target already is a fresh temporary name of its own (it is still removed on failure).
   */
  readonly direct?: boolean
  /** Flush big files to disk as they grow (default true), so the caller's final fsync has little left. */
  readonly flushBigFiles?: boolean
}

/** A writer whose big contents chunks are written in the background (on the thread pool), as `options` ask. */
const overlappedWriter = (options: RestoreOptions): WriterOptions & { readonly direct: boolean } =>
  ({ overlapWrites: true, flushBigFiles: options.flushBigFiles ?? true, canonical: options.canonical ?? false, direct: options.direct ?? false, pool: fileWriterPool() })

const restoreVia = <E, R>(target: string, options: WriterOptions & { readonly direct?: boolean }, fill: (writer: TreeWriter) => Effect.Effect<void, E, R>): Effect.Effect<void, E | NarIoError | TargetExists, R> =>
  Effect.gen(function*() {
    if (existsSync(target) || isDanglingLink(target)) return yield* new TargetExists({ path: target })
    const temp = options.direct ? target : join(dirname(target), `.${basename(target)}.restore-${process.pid}-${randomBytes(6).toString("hex")}`)
    yield* Effect.acquireUseRelease(
      Effect.sync(() => new TreeWriter(temp, options)),
      (writer) => Effect.gen(function*() {
        yield* fill(writer)
        yield* Effect.tryPromise({ try: () => writer.finish(), catch: (e) => fsError(e, "restore", target) })
        if (temp !== target) yield* Effect.try({ try: () => renameSync(temp, target), catch: (e) => fsError(e, "rename", target) })
      }),
      (writer, exit) => Effect.promise(async () => {
        await writer.close()
        if (exit._tag === "Failure") removeTree(temp)
      })
    )
  })

/**
 * Writes the events of a whole (small) NAR to `target`, which must not exist, with synchronous
 * calls only (no stream, no thread pool): for NARs of a few KiB, where everything else costs more
 * than the writes. On failure nothing is left at `target`.
 */
export const restoreEventsNow = (events: ReadonlyArray<NarEvent>, target: string, options: RestoreOptions = {}): NarIoError | TargetExists | undefined => {
  // (a direct target is the caller's fresh name, and the root is created exclusively anyway)
  if (!options.direct && (existsSync(target) || isDanglingLink(target))) return new TargetExists({ path: target })
  const temp = options.direct ? target : join(dirname(target), `.${basename(target)}.restore-${process.pid}-${randomBytes(6).toString("hex")}`)
  const writer = new TreeWriter(temp, { overlapWrites: false, flushBigFiles: false, canonical: options.canonical ?? false })
  let i = 0
  try {
    for (; i < events.length; i++) writer.apply(events[i]!) // without overlap or pool, nothing is left for later
    writer.closeNow()
    if (temp !== target) renameSync(temp, target)
    return undefined
  } catch (e) {
    writer.closeNow()
    if (i > 0) removeTree(temp) // (the root itself failed: whatever is there is not ours)
    return fsError(e, "restore", target)
  }
}

/** Applies a batch of decoded events, waiting for the writer when it asks to; a file-system failure is the effect's error. */
const applyEvents = (writer: TreeWriter, events: ReadonlyArray<NarEvent>, target: string): Effect.Effect<void, NarIoError> => {
  const outcome = writer.applyAll(events, target)
  if (outcome instanceof Promise) return Effect.flatMap(Effect.promise(() => outcome), (error) => error ? Effect.fail(error) : Effect.void)
  return outcome ? Effect.fail(outcome) : Effect.void
}

/**
 * Restores a stream of NAR events (e.g. decoded and checked in one pass by `narEvents`, check.ts)
 * to `target`, which must not exist; a failure of the stream, even at its very end, removes what
 * was written. Contents chunks are the writer's to keep: big ones are written in the background.
 */
export const restoreNarEvents = <E, R>(events: Stream.Stream<NarEvent, E, R>, target: string, options: RestoreOptions = {}): Effect.Effect<void, E | NarIoError | TargetExists, R> =>
  restoreVia(target, overlappedWriter(options), (writer) => Stream.runForEachArray(events, (batch) => applyEvents(writer, batch, target)))

/** Restores `nar` to `target`, which must not exist (big contents chunks are written in the background). */
export const restoreNar = <E, R>(nar: Stream.Stream<Uint8Array, E, R>, target: string, options: RestoreOptions = {}): Effect.Effect<void, E | BadNar | NarIoError | TargetExists, R> =>
  restoreNarEvents(decodeNar(nar), target, options)

/** Bytes read between yields to the scheduler (so an interruption is seen, and the temporary tree removed). */
const sliceBytes = 16 << 20

/**
 * Read buffers one fd restore cycles through at most (big contents chunks are written from them in
 * the background while the next are read): its first from `firstReadBuffers`, the others from
 * `aheadReadBuffers` while that pool can spare them (read-buffers.ts). 4 x 1 MiB: a 1 GiB path from a
 * file cache was restored as fast as with 8 (1.47-1.72 against 1.43-1.73 s, alternating).
 */
const readRing = 4
/** First buffers, one per restore in flight (16 when a copy restores 16 NARs at once); 8 kept free. */
export const firstReadBuffers = new ReadBuffers(256 << 10, 8)
/** Read-ahead buffers: one restore's worth lent at a time (exported, as the other, for tests). */
export const aheadReadBuffers = new ReadBuffers(1 << 20, readRing - 1)

/**
 * Restores the NAR read from a file descriptor (a file or a pipe, e.g. 0 for stdin) to `target`:
 * large synchronous reads, decoded and applied without a stream in between (the fastest path, for
 * the CLI). Big contents chunks are written on the thread pool while the next bytes are read, from
 * a ring of read buffers, each reused only once the writes from its last use are done. A
 * non-blocking descriptor with no data yet is polled.
 */
export const restoreNarFromFd = (fd: number, target: string): Effect.Effect<void, BadNar | NarIoError | TargetExists> =>
  restoreFromFd(fd, target, new NarDecoder(), { overlapWrites: true, flushBigFiles: false, canonical: false, pool: fileWriterPool() })

/** What a restore from a descriptor decodes with: the strict decoder, or a checker (nar/check.ts) that also hashes and checks. */
export interface FdNarDecoder<X> {
  readonly push: (chunk: Uint8Array, out: Array<NarEvent>) => X | undefined
  readonly end: () => X | undefined
}

/**
 * Restores the NAR in the file `fd` reads (from its current offset) to `target` as `restoreNarFromFd`
 * does, decoded by `decoder` (e.g. a NarChecker: the NAR is checked in the same pass), for the store:
 * big files flushed as they grow, store metadata with `canonical`. Its read buffers are reused, where
 * a stream of the file would allocate a new one per read (1 GiB of garbage for a 1 GiB NAR).
 */
export const restoreCheckedFromFd = <X>(fd: number, target: string, decoder: FdNarDecoder<X>, options: RestoreOptions = {}): Effect.Effect<void, X | NarIoError | TargetExists> =>
  restoreFromFd(fd, target, decoder, overlappedWriter(options))

const isRegularFile = (fd: number): boolean => {
  try {
    return fstatSync(fd).isFile()
  } catch {
    return false // the read says what is wrong
  }
}

const restoreFromFd = <X>(fd: number, target: string, decoder: FdNarDecoder<X>, options: WriterOptions & { readonly direct?: boolean }): Effect.Effect<void, X | NarIoError | TargetExists> =>
  Effect.acquireUseRelease(
    Effect.sync((): Array<Buffer> => []),
    (ring) => restoreVia(target, options, (writer) => Effect.gen(function*() {
      const events: Array<NarEvent> = []
      const inUse: Array<Promise<unknown> | undefined> = []
      let sinceYield = 0
      let slot = -1
      // more to read ahead, as far as we know (a short read from a file means its end is next; from a pipe it means nothing)
      let filled = true
      const isFile = isRegularFile(fd)
      for (;;) {
        // another buffer while the ring is short and the NAR is not all read (the pool may say no), else the ring's next
        const fresh = !filled || ring.length >= readRing ? undefined : ring.length === 0 ? firstReadBuffers.take(true) : aheadReadBuffers.take(false)
        if (fresh) {
          ring.push(fresh)
          slot = ring.length - 1
        } else slot = (slot + 1) % ring.length
        const busy = inUse[slot]
        if (busy) yield* Effect.promise(() => busy)
        const buffer = ring[slot]!
        let n = -1
        while (n < 0) {
          try {
            n = readSync(fd, buffer, 0, buffer.length, null)
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EAGAIN") return yield* fsError(e, "reading the NAR from", `file descriptor ${fd}`)
            yield* Effect.sleep(Duration.millis(2)) // a non-blocking descriptor with nothing yet
          }
        }
        if (n === 0) break
        filled = !isFile || n === buffer.length
        // contents events are views of `buffer`: small ones are written before the next read, big ones in the background
        const bad = decoder.push(buffer.subarray(0, n), events)
        yield* applyEvents(writer, events, target)
        events.length = 0 // only once all were applied: the writer may have waited halfway through
        if (bad !== undefined) return yield* Effect.fail(bad)
        inUse[slot] = writer.writesSoFar()
        sinceYield += n
        if (sinceYield >= sliceBytes) {
          sinceYield = 0
          yield* Effect.yieldNow
        }
      }
      const bad = decoder.end()
      if (bad !== undefined) return yield* Effect.fail(bad)
    })),
    // restoreVia has closed its writer (every write from these buffers settled), failed or not
    (ring) => Effect.sync(() => {
      firstReadBuffers.give(ring.slice(0, 1))
      aheadReadBuffers.give(ring.slice(1))
    })
  )
