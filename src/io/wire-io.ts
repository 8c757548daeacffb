/**
 * The I/O side of Nix's wire protocols: a `WireReader` that runs the pure decoders of
 * src/core/wire over bytes as they arrive from a socket or a pipe, and a `WireSink` that batches
 * small writes and respects the peer's back-pressure. The daemon server, the daemon client store
 * and both ends of the serve protocol share them.
 *
 * Memory is bounded: the reader asks the transport for more only when a decoder needs it (the
 * transport pauses when nobody reads), strings are capped by the decoders, and frames and NARs
 * are passed on in the pieces they arrive in, whatever their announced size.
 */
import { Effect, Option, Schema, Stream } from "effect"
import type { Readable, Writable } from "node:stream"
import { decodeBytes, fail as failInstr, u64, type Decoder, type Instruction } from "../core/wire/decoder.ts"
import { WireMalformed, WireTruncated, type WireError } from "../core/wire/errors.ts"
import { NarBoundary } from "../core/wire/nar-boundary.ts"

/** The connection failed or closed (reset, broken pipe, peer gone). */
export class WireClosed extends Schema.TaggedError<WireClosed>()("WireClosed", {
  reason: Schema.String
}) {
  override get message() { return `connection closed: ${this.reason}` }
}

export type WireIoError = WireError | WireClosed

/** Where a reader's bytes come from: the next piece, or null at the end. */
export interface ChunkSource {
  readonly next: () => Promise<Uint8Array | null>
  /** The next piece if the transport already holds one; undefined when only `next` can tell (nothing yet, the end, an error). */
  readonly nextNow?: () => Uint8Array | undefined
}

/** `f` of a value that may still be coming: at once when it is there, else when its promise settles. */
export const andThenNow = <A, B>(a: A | Promise<A>, f: (a: A) => B | Promise<B>): B | Promise<B> =>
  a instanceof Promise ? a.then(f) : f(a)

/** A failure of reading or decoding as a wire error (one from a decoder passes as it is; anything else closed the wire). */
export const toIoError = (e: unknown): WireIoError =>
  typeof e === "object" && e !== null && "_tag" in e && ["WireTruncated", "WireTooLarge", "WireMalformed", "WireClosed"].includes((e as { _tag: string })._tag)
    ? e as WireIoError
    : new WireClosed({ reason: e instanceof Error ? e.message : String(e) })

/** A Node readable (socket, stdin) as a chunk source; it stays paused while nobody asks for bytes. */
export const readableChunkSource = (stream: Readable): ChunkSource => {
  let ended = false
  let error: Error | undefined
  let waiter: (() => void) | undefined
  const wake = () => { const w = waiter; waiter = undefined; w?.() }
  stream.on("readable", wake)
  stream.on("end", () => { ended = true; wake() })
  stream.on("close", () => { ended = true; wake() })
  stream.on("error", (e) => { error = e; wake() })
  return {
    nextNow: () => error || ended ? undefined : (stream.read() as Uint8Array | null) ?? undefined,
    next: () => new Promise<Uint8Array | null>((resolve, reject) => {
      const attempt = () => {
        if (error) return reject(new WireClosed({ reason: error.message }))
        const chunk = stream.read() as Uint8Array | null
        if (chunk !== null) return resolve(chunk)
        if (ended || stream.readableEnded || stream.destroyed) return resolve(null)
        waiter = attempt
      }
      attempt()
    })
  }
}

/**
 * `n` bytes of `chunk` from `start`, as a plain Uint8Array view. Not `chunk.subarray`: a socket's
 * chunks are Buffers, whose `subarray` is Node's JavaScript (and makes Buffers, so every later
 * `subarray` of the view is too), while this is V8's own; on a fresh daemon's first copy of 1,000
 * small paths Buffer's `subarray` and `FastBuffer` took ~6 ms of its main thread, run interpreted.
 */
const viewOf = (chunk: Uint8Array, start: number, n: number): Uint8Array => new Uint8Array(chunk.buffer, chunk.byteOffset + start, n)

export class WireReader {
  private chunks: Array<Uint8Array> = []
  private head = 0
  private avail = 0
  private ended = false
  /** Bytes taken from this reader so far. */
  consumed = 0

  private readonly source: ChunkSource

  constructor(source: ChunkSource) { this.source = source }

  /** Adds the transport's next chunk; false at its end. */
  private async fill(): Promise<boolean> {
    if (this.ended) return false
    const chunk = await this.source.next()
    if (chunk === null) { this.ended = true; return false }
    if (chunk.length > 0) { this.chunks.push(chunk); this.avail += chunk.length }
    return true
  }

  /** Adds a chunk the transport already holds, without waiting; false if it holds none. */
  private fillNow(): boolean {
    if (this.ended) return false
    const chunk = this.source.nextNow?.()
    if (chunk === undefined) return false
    if (chunk.length > 0) { this.chunks.push(chunk); this.avail += chunk.length }
    return true
  }

  /** Whether `n` bytes are buffered, taking what the transport already holds. */
  private haveNow(n: number): boolean {
    while (this.avail < n) if (!this.fillNow()) return false
    return true
  }

  /** Exactly n buffered bytes (a view when they lie in one chunk). */
  private take(n: number): Uint8Array {
    this.avail -= n
    this.consumed += n
    const first = this.chunks[0]
    if (n === 0) return new Uint8Array(0)
    if (first !== undefined && first.length - this.head >= n) {
      const view = viewOf(first, this.head, n)
      this.head += n
      if (this.head === first.length) { this.chunks.shift(); this.head = 0 }
      return view
    }
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const c = this.chunks[0]!
      const k = Math.min(c.length - this.head, n - filled)
      out.set(viewOf(c, this.head, k), filled)
      filled += k
      this.head += k
      if (this.head === c.length) { this.chunks.shift(); this.head = 0 }
    }
    return out
  }

  /** The next `n` bytes without consuming them (null if the input ends first). */
  peek(n: number): Effect.Effect<Uint8Array | null, WireIoError> {
    return Effect.tryPromise({
      try: async () => {
        while (this.avail < n) if (!(await this.fill())) return null
        const first = this.chunks[0]!
        if (first.length - this.head >= n) return first.slice(this.head, this.head + n)
        const saved = { chunks: this.chunks, head: this.head, avail: this.avail, consumed: this.consumed }
        const out = this.take(n)
        this.chunks = saved.chunks
        this.head = saved.head
        this.avail = saved.avail
        this.consumed = saved.consumed
        return out
      },
      catch: toIoError
    })
  }

  /** Up to `max` bytes (at least one), or null at the end. */
  async takeUpTo(max: number): Promise<Uint8Array | null> {
    while (this.avail === 0) if (!(await this.fill())) return null
    return this.takeFromFirst(max)
  }

  /** Up to `max` of the bytes left in the first buffered chunk (a view; at least one byte must be buffered). */
  private takeFromFirst(max: number): Uint8Array {
    return this.take(Math.min(max, this.chunks[0]!.length - this.head))
  }

  /** Up to `max` more bytes among those buffered and those the transport already holds, as views pushed to `out`; how many. */
  private takeBufferedNow(max: number, out: Array<Uint8Array>): number {
    let got = 0
    while (got < max) {
      if (this.avail === 0 && (!this.fillNow() || this.avail === 0)) break
      const piece = this.takeFromFirst(max - got)
      out.push(piece)
      got += piece.length
    }
    return got
  }

  /**
   * Runs a decoder on the bytes buffered and those the transport already holds: its value at once
   * when they suffice (no promise, no turn of the event loop: a daemon sent a thousand small paths
   * has most of them buffered), else a promise of it. A decoder's failure is thrown, or rejects.
   */
  runNow<A>(decoder: Decoder<A>): A | Promise<A> {
    return this.drive(decoder, decoder.next())
  }

  private drive<A>(decoder: Decoder<A>, step: IteratorResult<Instruction, A>): A | Promise<A> {
    while (!step.done) {
      const instr = step.value
      if (instr._tag === "Fail") throw instr.error
      const { n, what } = instr
      if (!this.haveNow(n)) return this.waitFor(n, what, decoder).then(() => this.drive(decoder, decoder.next(this.take(n))))
      step = decoder.next(this.take(n))
    }
    return step.value
  }

  /** Waits until `n` bytes are buffered; `WireTruncated` (the decoder closed) if the input ends first. */
  private async waitFor(n: number, what: string, decoder?: Decoder<unknown>): Promise<void> {
    while (this.avail < n) {
      if (!(await this.fill())) {
        decoder?.return(undefined as never)
        throw new WireTruncated({ what })
      }
    }
  }

  async runAsync<A>(decoder: Decoder<A>): Promise<A> {
    return this.runNow(decoder)
  }

  /**
   * The next `n` bytes in one piece (a view when they arrived in one chunk), at once when they are
   * buffered, else a promise of them. Only for a bounded `n` the caller has checked: the bytes are
   * held until all have come.
   */
  wholeNow(n: number, what: string): Uint8Array | Promise<Uint8Array> {
    return this.haveNow(n) ? this.take(n) : this.waitFor(n, what).then(() => this.take(n))
  }

  /** Runs a decoder on the bytes as they arrive. */
  run<A>(decoder: Decoder<A>): Effect.Effect<A, WireIoError> {
    return Effect.tryPromise({ try: () => this.runAsync(decoder), catch: toIoError })
  }

  /** Whether the peer has closed with nothing left unread (a clean end between messages). */
  atEnd(): Effect.Effect<boolean, WireIoError> {
    return Effect.tryPromise({
      try: async () => {
        while (this.avail === 0) if (!(await this.fill())) return true
        return false
      },
      catch: toIoError
    })
  }

  /**
   * The next `n` bytes as a stream of the pieces they arrive in: each step waits for one piece, then
   * takes all that is buffered already with it (up to `exactStepMax` bytes), so a big NAR read while
   * the consumer is busy goes through the stream in few steps, not one per socket read or frame.
   */
  exact(n: number, what: string): Stream.Stream<Uint8Array, WireIoError> {
    if (n === 0) return Stream.empty
    return Stream.paginate(n, (left) => Effect.tryPromise({
      try: async () => {
        const first = await this.takeUpTo(Math.min(left, exactStepMax))
        if (first === null) throw new WireTruncated({ what })
        const pieces = [first]
        const rest = left - first.length - this.takeBufferedNow(Math.min(left, exactStepMax) - first.length, pieces)
        return [pieces, rest === 0 ? Option.none() : Option.some(rest)] as const
      },
      catch: toIoError
    }))
  }

  /** Skips the next `n` bytes. */
  skip(n: number, what: string): Effect.Effect<void, WireIoError> {
    return Stream.runDrain(this.exact(n, what))
  }

  /**
   * A bare NAR: its bytes up to the end of its structure, as they arrive. The stream fails with
   * WireMalformed on bytes that are not a NAR, and stops exactly at the archive's end.
   */
  nar(): Stream.Stream<Uint8Array, WireIoError> {
    const boundary = new NarBoundary()
    return Stream.unfold(false, (finished) => finished ? Effect.succeed(undefined) : Effect.tryPromise({
      try: async () => {
        while (this.avail === 0) if (!(await this.fill())) throw new WireTruncated({ what: "a NAR" })
        const first = this.chunks[0]!
        const view = first.subarray(this.head)
        const r = boundary.push(view)
        if (typeof r !== "number") throw r
        const n = r < 0 ? view.length : r
        return [this.take(n), r >= 0] as const
      },
      catch: toIoError
    }))
  }

  /**
   * A reader over a framed stream (Nix's FramedSource: u64 length, that many bytes, …, 0) carried
   * by this one. Frames are passed on in pieces, so an announced length allocates nothing.
   */
  framed(): FramedReader {
    let left = 0
    let done = false
    const parent = this
    const reader = new FramedReader({
      // a frame's header and (part of) its bytes when they are buffered here already
      nextNow: () => {
        if (done) return undefined
        while (left === 0) {
          if (!parent.haveNow(8)) return undefined
          const header = decodeBytes(frameLength(), parent.take(8))
          if (header._tag === "Failure") throw header.failure
          if (header.success.value === 0) { done = true; return undefined }
          left = header.success.value
        }
        if (!parent.haveNow(1)) return undefined
        const piece = parent.takeFromFirst(left)
        left -= piece.length
        return piece
      },
      next: async () => {
        if (done) return null
        while (left === 0) {
          const header = await parent.runAsync(frameLength())
          if (header === 0) { done = true; return null }
          left = header
        }
        const piece = await parent.takeUpTo(left)
        if (piece === null) throw new WireTruncated({ what: "a frame" })
        left -= piece.length
        return piece
      }
    })
    reader.finished = () => done
    return reader
  }
}

const frameLength = (): Decoder<number> => u64("a frame length")

/** Bytes one step of `exact` passes on at most (views of buffers already received: nothing is copied). */
const exactStepMax = 1 << 20

export class FramedReader extends WireReader {
  finished: () => boolean = () => false
  /** Reads and drops whatever is left of the framed stream, so the connection stays in step. */
  drain(): Effect.Effect<void, WireIoError> {
    return Effect.tryPromise({
      try: async () => { while ((await this.takeUpTo(1 << 20)) !== null) { /* skip */ } },
      catch: toIoError
    })
  }
}

/** Fails a decoder: for protocol handlers that find a bad value after reading it. */
export const malformed = (reason: string): Decoder<never> => failInstr(new WireMalformed({ reason }))

/**
 * Buffered writes to a socket or pipe. Small writes are batched until `flush`; big ones go out at
 * once. `flush` and `write` wait while the peer is not reading (the kernel buffer is full).
 */
export class WireSink {
  private pending: Array<Uint8Array> = []
  private size = 0
  private error: Error | undefined

  private readonly stream: Writable
  private readonly batch: number

  constructor(stream: Writable, batch = 64 * 1024) {
    this.stream = stream
    this.batch = batch
    stream.on("error", (e) => { this.error = e })
  }

  get failed(): boolean { return this.error !== undefined || this.stream.destroyed }

  /** Queues bytes; they are written when the batch is full or on `flush`. */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    this.pending.push(bytes)
    this.size += bytes.length
  }

  private async writeOut(): Promise<void> {
    if (this.error) throw new WireClosed({ reason: this.error.message })
    if (this.stream.destroyed || this.stream.writableEnded) throw new WireClosed({ reason: "the peer is gone" })
    if (this.size === 0) return
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.size)
    this.pending = []
    this.size = 0
    const ok = this.stream.write(data)
    if (!ok) await this.waitDrain()
  }

  private waitDrain(): Promise<void> {
    return new Promise((resolve, reject) => {
      const cleanup = () => { this.stream.off("drain", onDrain); this.stream.off("close", onClose); this.stream.off("error", onError) }
      const onDrain = () => { cleanup(); resolve() }
      const onClose = () => { cleanup(); reject(new WireClosed({ reason: "the peer is gone" })) }
      const onError = (e: Error) => { cleanup(); reject(new WireClosed({ reason: e.message })) }
      this.stream.on("drain", onDrain)
      this.stream.on("close", onClose)
      this.stream.on("error", onError)
    })
  }

  /** Queues bytes and writes the batch out if it is full. */
  write(bytes: Uint8Array): Effect.Effect<void, WireClosed> {
    this.push(bytes)
    if (this.size < this.batch) return Effect.void
    return Effect.tryPromise({ try: () => this.writeOut(), catch: (e) => toIoError(e) as WireClosed })
  }

  writeAsync(bytes: Uint8Array): Promise<void> {
    this.push(bytes)
    return this.size < this.batch ? Promise.resolve() : this.writeOut()
  }

  flushAsync(): Promise<void> { return this.writeOut() }

  flush(): Effect.Effect<void, WireClosed> {
    return Effect.tryPromise({ try: () => this.writeOut(), catch: (e) => toIoError(e) as WireClosed })
  }
}
