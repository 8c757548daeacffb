/**
 * Serialising a filesystem path as a NAR, as `nix-store --dump` does: entries sorted bytewise,
 * the executable bit, symlinks (never followed), empty files and directories; sockets, FIFOs and
 * devices are refused.
 *
 * How it is fast: a tree is cut into directory jobs (dir-job.ts) that worker threads run in
 * parallel with this one (listing, opening and reading small files is syscall-bound), while this
 * thread emits their output in NAR order and streams big files with asynchronous reads kept two
 * chunks ahead, so that reading overlaps with hashing or writing (into three reused buffers for
 * consumers that never keep a chunk, fresh ones for the others). Small trees never start workers:
 * jobs run inline until they have taken a while. Memory stays bounded: only a window of jobs ahead of the output is
 * scheduled, and their buffers are recycled.
 */
import { Array as Arr, Cause, Channel, Effect, Pull, Scope, Stream } from "effect"
import * as fs from "node:fs"
import { setImmediate as nextTurn } from "node:timers/promises"
import * as Hash from "../../core/hash.ts"
import { NarChecker } from "../check.ts"
import { directoryJobRunner, type BigFileMark, type DirJob, type DirJobResult, type FsPath, type JobFailure, type JobLimits } from "./dir-job.ts"
import { errnoDescription, fsError, FileNotFound, NarIoError, UnsupportedFileType, type NarFsError } from "./errors.ts"
import { NarWriter } from "../nar-writer.ts"
import { sharedPool, type WorkerPool } from "./worker-pool.ts"

export interface DumpOptions {
  /**
   * Reuse the buffers of big-file chunks once the consumer asks for the next chunk. Faster (no fresh
   * memory per chunk), but only for consumers that never keep a chunk (hashing, writing out).
   */
  readonly reuseBuffers?: boolean
  /** Worker threads (default: the shared pool, one per core but one, at most 4); 0 runs everything on this thread. */
  readonly workers?: number
  /**
   * Directory jobs read ahead of the output (default 24, each up to ~1.3 MiB of file contents):
   * fewer for a consumer that runs many dumps at once (a server), so memory stays small.
   */
  readonly ahead?: number
  /**
   * Size of the reused read buffers for big files (default 1 MiB): smaller for a consumer that runs
   * many dumps at once and hands chunks to sockets (a server), where 256 KiB goes as fast.
   */
  readonly chunkBytes?: number
}

const limits: JobLimits = { smallFileMax: 256 * 1024, jobBytes: 1024 * 1024, jobEntries: 512 }
/** Entries per job when a big directory is split. */
const piece = 256
/**
 * Big files are read in chunks of 1 MiB into reused buffers, of 256 KiB into fresh ones: a consumer
 * that keeps chunks a while (a socket, a compressor) holds less, and fresh garbage is collected sooner.
 */
const reusedChunk = 1024 * 1024
const freshChunk = 256 * 1024
/**
 * Read rings (three reused chunk buffers) of finished runs, for the next runs: a server dumping NAR
 * after NAR would otherwise leave 3 MiB of external memory per NAR for the garbage collector, which
 * frees it late (serving a local store peaked at ~66 MiB of array buffers).
 */
const freeRings = new Map<number, Array<Array<Buffer>>>()
const maxFreeRings = 8
/** Inline work (ms) after which the worker pool is brought in. */
const inlineBudgetMs = 25
/** Jobs scheduled ahead of the output (running or finished, not yet emitted). */
const maxAhead = 24

const runInline = directoryJobRunner(fs, NarWriter, limits)

interface JobNode {
  readonly key: ReadonlyArray<number>
  readonly job: DirJob
  submitted: boolean
  result: DirJobResult | undefined
  promise: Promise<DirJobResult> | undefined
  /** jobs of the subdirectories marked in the result, in mark order (emptied once emitted) */
  children: Array<JobNode>
  /** jobs for the rest of the same directory, in order */
  continuations: Array<JobNode>
}

const compareKeys = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/** A binary min-heap of job nodes by key (the order they appear in the NAR). */
class JobHeap {
  private readonly items: Array<JobNode> = []
  get size() { return this.items.length }
  peek(): JobNode | undefined { return this.items[0] }
  push(node: JobNode): void {
    const a = this.items
    a.push(node)
    let i = a.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (compareKeys(a[parent]!.key, node.key) <= 0) break
      a[i] = a[parent]!
      i = parent
    }
    a[i] = node
  }
  /** Takes `node` out (it is normally the top: the output needs jobs in key order). */
  remove(node: JobNode): void {
    if (this.items[0] === node) { this.pop(); return }
    const rest = this.items.splice(0).filter((n) => n !== node)
    for (const n of rest) this.push(n)
  }
  pop(): JobNode | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last !== undefined) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1, r = l + 1
        let m = i
        const key = (j: number) => j === i ? last.key : a[j]!.key
        if (l < a.length && compareKeys(a[l]!.key, key(m)) < 0) m = l
        if (r < a.length && compareKeys(a[r]!.key, key(m)) < 0) m = r
        if (m === i) break
        a[i] = a[m]!
        i = m
      }
      a[i] = last
    }
    return top
  }
}

const showPath = (p: FsPath) => typeof p === "string" ? p : Buffer.from(p).toString()

const failureError = (f: JobFailure): NarFsError =>
  f.type === "unsupported"
    ? new UnsupportedFileType({ path: f.path, kind: f.message })
    : new NarIoError({ path: f.path, operation: f.operation, code: f.code, reason: errnoDescription(f.message) })

const closeMarks = (result: DirJobResult | undefined) => {
  if (!result) return
  for (const s of result.segments) {
    if (!(s instanceof Uint8Array) && s.mark === "file") {
      try { fs.closeSync(s.fd) } catch { /* already closed */ }
    }
  }
}

const readAt = (fd: number, buffer: Uint8Array, length: number, position: number): Promise<number | NodeJS.ErrnoException> =>
  new Promise((resolve) => fs.read(fd, buffer, 0, length, position, (error, n) => resolve(error ?? n)))

/** What a job node holds once its output was emitted (its segments are no longer needed). */
const releasedResult: DirJobResult = { segments: [] }

/** One serialisation run: schedules the jobs and yields the NAR in order. */
class DumpRun {
  private readonly heap = new JobHeap()
  private readonly pool: WorkerPool | undefined
  private ahead = 0
  private inlineMs = 0
  private aborted = false
  private readonly unreleased = new Set<JobNode>()
  /** the buffers big files are read into, in turn, when chunks are reused */
  private readBuffers: Array<Buffer> | undefined
  /** output buffers of emitted jobs, for the next jobs (only when reusing buffers) */
  private readonly free: Array<ArrayBuffer> = []
  private readonly reuse: boolean
  private readonly maxAhead: number
  private readonly reusedChunk: number

  constructor(options: DumpOptions) {
    this.reuse = options.reuseBuffers === true
    this.maxAhead = Math.max(1, options.ahead ?? maxAhead)
    this.reusedChunk = Math.max(64 * 1024, options.chunkBytes ?? reusedChunk)
    this.pool = options.workers === 0 ? undefined : sharedPool(limits, options.workers)
  }

  private node(key: ReadonlyArray<number>, job: DirJob): JobNode {
    return { key, job, submitted: false, result: undefined, promise: undefined, children: [], continuations: [] }
  }

  /** A job finished: schedule the jobs it revealed (its subdirectories and the rest of its directory). */
  private settle(node: JobNode, result: DirJobResult): void {
    node.result = result
    if (this.aborted) { closeMarks(result); return }
    this.unreleased.add(node)
    if (result.failure) return
    let mark = 0
    const dir = node.job.dir
    for (const s of result.segments) {
      if (!(s instanceof Uint8Array) && s.mark === "dir") {
        const child = this.node([...node.key, mark++], { dir: s.path, first: true })
        node.children.push(child)
        this.heap.push(child)
      }
    }
    if (result.rest) {
      const { names, kinds } = result.rest
      for (let i = 0, j = 0; i < names.length; i += piece, j++) {
        const next = this.node([...node.key, 0x40000000 + j], { dir, first: false, names: names.slice(i, i + piece), kinds: kinds.slice(i, i + piece) })
        node.continuations.push(next)
        this.heap.push(next)
      }
    }
    this.dispatch()
  }

  private submit(node: JobNode): void {
    node.submitted = true
    this.ahead++
    node.promise = this.pool!.run(node.job, this.free.pop()).then((result) => {
      // a worker that died (or never started) is not the tree's fault: do its job here
      const final = result.failure?.code === "EWORKER" ? runInline(node.job) : result
      this.settle(node, final)
      return final
    })
  }

  /** Keeps idle workers busy with the next jobs in NAR order, within the look-ahead window. */
  private dispatch(): void {
    const pool = this.pool
    if (!pool || !pool.started) return
    while (this.ahead < this.maxAhead && pool.hasIdle) {
      const next = this.heap.pop()
      if (!next) return
      this.submit(next)
    }
  }

  /** Runs a job on this thread. */
  private runHere(node: JobNode): void {
    const t0 = performance.now()
    node.submitted = true
    this.ahead++
    this.settle(node, runInline(node.job, this.free.pop()))
    this.inlineMs += performance.now() - t0
  }

  /**
   * The result of the job the output needs next. Unscheduled, it goes to an idle worker or runs
   * here; while it runs on a worker, this thread helps with the jobs after it.
   */
  private async need(node: JobNode): Promise<DirJobResult> {
    const pool = this.pool
    if (!node.submitted) {
      this.heap.remove(node)
      if (pool && !pool.started && this.inlineMs > inlineBudgetMs) pool.start()
      if (pool && pool.hasIdle) this.submit(node)
      else {
        this.runHere(node)
        if (pool && pool.started) {
          await nextTurn() // let workers come online and results arrive
          this.dispatch()
        }
        return node.result!
      }
    }
    while (!node.result) {
      if (this.heap.size === 0 || this.ahead >= this.maxAhead) return node.promise!
      if (pool!.hasIdle) this.dispatch()
      else this.runHere(this.heap.pop()!)
      await nextTurn()
    }
    return node.result
  }

  private release(node: JobNode): void {
    this.unreleased.delete(node)
    this.ahead--
    if (this.reuse && node.result) {
      // the consumer has asked for the chunk after this job's output: its buffers are free again
      const jobBuffer = limits.jobBytes + limits.smallFileMax + 4096
      for (const s of node.result.segments) {
        if (s instanceof Uint8Array && s.buffer.byteLength === jobBuffer && !this.free.includes(s.buffer as ArrayBuffer) && this.free.length < this.maxAhead) {
          this.free.push(s.buffer as ArrayBuffer)
        }
      }
    }
    // Emitted: drop the output, which the parent's `children` would otherwise keep to the end of the dump.
    node.result = releasedResult
    node.children = []
    this.dispatch()
  }

  /**
   * Streams a big file's contents (the job already wrote its header; padding follows in the next
   * segment), with asynchronous reads kept two chunks ahead so that reading (on libuv's threads)
   * overlaps with whatever the consumer does with the chunk before (hashing, writing out). Consumers
   * that never keep a chunk get three buffers reused in turn; the others get a fresh buffer a chunk.
   */
  private async *bigFile(mark: { readonly fd: number; readonly size: number; readonly path: FsPath }): AsyncGenerator<Uint8Array, NarFsError | undefined> {
    const { fd, size } = mark
    const bigChunk = this.reuse ? this.reusedChunk : freshChunk
    const chunks = Math.ceil(size / bigChunk)
    const reads: Array<Promise<number | NodeJS.ErrnoException>> = []
    const bufferOf: Array<Buffer> = []
    const ring = this.reuse ? (this.readBuffers ??= freeRings.get(bigChunk)?.pop() ?? [0, 1, 2].map(() => Buffer.allocUnsafeSlow(bigChunk))) : undefined
    const start = (k: number) => {
      if (k >= chunks) return
      const length = Math.min(bigChunk, size - k * bigChunk)
      const buffer = ring ? ring[k % 3]! : Buffer.allocUnsafeSlow(length)
      bufferOf[k % 3] = buffer
      reads[k % 3] = readAt(fd, buffer, length, k * bigChunk)
    }
    try {
      start(0)
      start(1)
      for (let k = 0; k < chunks; k++) {
        const n = await reads[k % 3]!
        const want = Math.min(bigChunk, size - k * bigChunk)
        if (typeof n !== "number") return fsError(n, "reading", showPath(mark.path))
        if (n !== want) {
          return new NarIoError({ path: showPath(mark.path), operation: "reading", code: "EIO", reason: `file changed size while being read (expected ${size} bytes)` })
        }
        if (this.aborted) return undefined
        // with reused buffers, the slot of chunk k+2 is the one chunk k-1 was in: free once the consumer asked for chunk k
        start(k + 2)
        yield bufferOf[k % 3]!.subarray(0, n)
      }
      return undefined
    } finally {
      // let reads still in flight finish before the descriptor (and buffers) go away
      await Promise.all(reads)
      try { fs.closeSync(fd) } catch { /* already closed */ }
    }
  }

  /**
   * The NAR of `root`. When it ends (or is closed), its read ring goes back to the pool: by then its
   * reads have settled and the consumer has handed back the last chunk (it asked for the next one).
   */
  async *chunks(root: string): AsyncGenerator<Uint8Array, NarFsError | undefined> {
    try {
      return yield* this.dump(root)
    } finally {
      const ring = this.readBuffers
      this.readBuffers = undefined
      if (ring) {
        let free = freeRings.get(ring[0]!.length)
        if (!free) freeRings.set(ring[0]!.length, free = [])
        if (free.length < maxFreeRings) free.push(ring)
      }
    }
  }

  private async *dump(root: string): AsyncGenerator<Uint8Array, NarFsError | undefined> {
    let st: fs.Stats
    try {
      st = fs.lstatSync(root)
    } catch (error) {
      const e = fsError(error, "reading", root)
      return e.code === "ENOENT" || e.code === "ENOTDIR" ? new FileNotFound({ path: root }) : e
    }
    if (st.isSymbolicLink()) {
      const w = new NarWriter(4096)
      try {
        w.raw(NarWriter.seq.magic)
        w.raw(NarWriter.seq.symlink)
        w.string(fs.readlinkSync(root, { encoding: "buffer" }))
        w.raw(NarWriter.seq.close)
      } catch (error) {
        return fsError(error, "reading symlink", root)
      }
      yield* w.take()
      return undefined
    }
    if (st.isFile()) return yield* this.rootFile(root)
    if (!st.isDirectory()) return new UnsupportedFileType({ path: root, kind: kindName(st) })
    yield NarWriter.seq.magic
    try {
      return yield* this.tree(root)
    } finally {
      this.aborted = true
      for (const node of this.unreleased) closeMarks(node.result)
      this.unreleased.clear()
    }
  }

  private async *rootFile(root: string): AsyncGenerator<Uint8Array, NarFsError | undefined> {
    let fd: number
    try {
      fd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
    } catch (error) {
      return fsError(error, "opening", root)
    }
    let size: number, executable: boolean
    try {
      const st = fs.fstatSync(fd)
      size = st.size
      executable = (st.mode & 0o100) !== 0
    } catch (error) {
      fs.closeSync(fd)
      return fsError(error, "reading", root)
    }
    const w = new NarWriter(4096)
    w.raw(NarWriter.seq.magic)
    w.raw(executable ? NarWriter.seq.executable : NarWriter.seq.regular)
    w.u64(size)
    yield* w.take()
    const error = yield* this.bigFile({ fd, size, path: root })
    if (error) return error
    w.pad(size)
    w.raw(NarWriter.seq.close)
    yield* w.take()
    return undefined
  }

  private async *tree(root: string): AsyncGenerator<Uint8Array, NarFsError | undefined> {
    const rootNode = this.node([], { dir: root, first: true })
    this.heap.push(rootNode)
    interface Frame { node: JobNode; seg: number; mark: number; readonly queue: Array<JobNode> }
    const stack: Array<Frame> = [{ node: rootNode, seg: 0, mark: 0, queue: [] }]
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!
      let result = frame.node.result
      if (!result) result = await this.need(frame.node)
      if (result.failure) return failureError(result.failure)
      const segments = result.segments
      if (frame.seg < segments.length) {
        const s = segments[frame.seg++]!
        if (s instanceof Uint8Array) yield s
        else if (s.mark === "dir") stack.push({ node: frame.node.children[frame.mark++]!, seg: 0, mark: 0, queue: [] })
        else {
          const error = yield* this.bigFile(s as BigFileMark)
          if (error) return error
        }
        continue
      }
      this.release(frame.node)
      if (frame.node.continuations.length > 0) frame.queue.unshift(...frame.node.continuations)
      const next = frame.queue.shift()
      if (next) {
        frame.node = next
        frame.seg = 0
        frame.mark = 0
        continue
      }
      stack.pop()
      yield NarWriter.seq.close
    }
    return undefined
  }
}

const kindName = (st: fs.Stats): string =>
  st.isSocket() ? "socket" : st.isFIFO() ? "FIFO" : st.isCharacterDevice() ? "character device" : st.isBlockDevice() ? "block device" : "special file"

/**
 * The NAR of `path` as an async iterator of chunks; it returns (as its final value) the error that
 * stopped it, if any. With `reuseBuffers`, a chunk is only valid until the next one is requested.
 */
export const narChunks = (path: string, options: DumpOptions = {}): AsyncGenerator<Uint8Array, NarFsError | undefined> =>
  new DumpRun(options).chunks(path)

/** The NAR serialisation of `path`, streamed (chunks are the consumer's to keep). */
export const narFromPath = (path: string, options: Omit<DumpOptions, "reuseBuffers"> = {}): Stream.Stream<Uint8Array, NarFsError> =>
  Stream.fromChannel(Channel.fromTransform((_, scope) => Effect.gen(function*() {
    const it = narChunks(path, { ...options, reuseBuffers: false })
    let finished = false
    yield* Scope.addFinalizer(scope, Effect.promise(async () => { if (!finished) await it.return(undefined) }))
    const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, NarFsError> = Effect.flatMap(
      Effect.promise(() => it.next()),
      (r): Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, NarFsError> => {
        if (!r.done) return Effect.succeed([r.value])
        finished = true
        return r.value ? Effect.fail(r.value) : Cause.done()
      }
    )
    return pull
  })))

/**
 * Feeds the NAR of `path` to `consume` chunk by chunk without keeping it: each chunk is only valid
 * during the call (and until the returned promise settles). The fast path for hashing and writing
 * out. `consume` stops the dump by returning (or resolving to) an error, which the effect fails with.
 */
export const forEachNarChunk = <E = never>(
  path: string,
  consume: (chunk: Uint8Array) => E | undefined | void | Promise<E | undefined | void>,
  options: Omit<DumpOptions, "reuseBuffers"> = {}
): Effect.Effect<void, NarFsError | E> =>
  Effect.flatMap(
    Effect.promise(async (signal): Promise<NarFsError | E | undefined> => {
      const it = narChunks(path, { ...options, reuseBuffers: true })
      try {
        for (;;) {
          if (signal.aborted) return undefined
          const r = await it.next()
          if (r.done) return r.value
          const result = consume(r.value)
          const stop = result instanceof Promise ? await result : result
          if (stop !== undefined) return stop
        }
      } finally {
        await it.return(undefined)
      }
    }),
    (error) => error !== undefined ? Effect.fail(error) : Effect.void
  )

/** A NAR's hash and size. */
export interface NarDigest {
  readonly hash: Hash.Hash
  readonly size: number
}

/**
 * The NAR hash and size of `path` in one pass (what `nix hash path` and `nix-store --dump | sha256sum`
 * compute), through the checker (check.ts) with nothing expected: the NAR is our own dump, so it is
 * hashed and counted, not decoded.
 */
export const narDigestOfPath = (path: string, algorithm: Hash.HashAlgorithm = "sha256", options: Omit<DumpOptions, "reuseBuffers"> = {}): Effect.Effect<NarDigest, NarFsError> =>
  Effect.suspend(() => {
    const checker = new NarChecker({ narHash: algorithm, validate: false })
    return Effect.map(
      forEachNarChunk<never>(path, (chunk) => { checker.push(chunk) }, options),
      () => {
        checker.end() // nothing expected and nothing decoded: it cannot fail
        const { narHash, narSize } = checker.result()
        return { hash: narHash, size: narSize }
      }
    )
  })
