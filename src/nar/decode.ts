/**
 * The NAR decoder: a pure incremental state machine. Feed it chunks with `push`, then call `end`;
 * it appends events to the array it is given and returns a `BadNar` (with the byte offset) at the first
 * problem. It accepts exactly the canonical NAR Nix writes (magic, tokens in order, zero padding,
 * names strictly ascending, no trailing bytes), so decoding then encoding gives back the same bytes.
 *
 * Memory is bounded by the limits, never by a length field: file contents are passed through as
 * subarrays of the input chunks, names and targets are capped, tokens are checked by length first.
 * The decoder keeps no reference to a chunk after `push` returns (so a caller may refill it), but
 * the `Contents` events it emitted are views of it: consume them first.
 */
import { Stream } from "effect"
import { BadNar } from "./errors.ts"
import * as Ev from "./events.ts"
import { transduce } from "./transduce.ts"

// Grammar states: what the next string in the archive must be.
const MAGIC = 0, OPEN = 1, TYPE_KW = 2, TYPE = 3, REG_FIELD = 4, EXEC_VALUE = 5, CONTENTS_KW = 6, CONTENTS = 7,
  NODE_CLOSE = 8, TARGET_KW = 9, TARGET = 10, DIR_FIELD = 11, ENTRY_OPEN = 12, NAME_KW = 13, NAME = 14, NODE_KW = 15,
  ENTRY_CLOSE = 16, DONE = 17

// Low-level phases: where we are inside one string.
const LEN = 0, BODY = 1, STREAM = 2, PAD = 3

const text = new TextEncoder()
const tok = (s: string) => text.encode(s)
const T = {
  magic: tok("nix-archive-1"), open: tok("("), close: tok(")"), type: tok("type"), regular: tok("regular"),
  symlink: tok("symlink"), directory: tok("directory"), executable: tok("executable"), contents: tok("contents"),
  target: tok("target"), entry: tok("entry"), name: tok("name"), node: tok("node")
}

/** The tokens each grammar state accepts (empty for states that take a name, target or contents). */
const expected: ReadonlyArray<ReadonlyArray<Uint8Array>> = [
  [T.magic], [T.open], [T.type], [T.regular, T.symlink, T.directory], [T.executable, T.contents], [new Uint8Array(0)],
  [T.contents], [], [T.close], [T.target], [], [T.entry, T.close], [T.open], [T.name], [], [T.node], [T.close], []
]
const maxTokenLength = 16
const describe = (state: number): string => {
  if (state === MAGIC) return "the 'nix-archive-1' header"
  if (state === EXEC_VALUE) return "an empty string after 'executable'"
  if (state === CONTENTS) return "file contents"
  if (state === TARGET) return "a symlink target"
  if (state === NAME) return "an entry name"
  if (state === DONE) return "the end of the archive"
  const names = expected[state]!.map((t) => `'${new TextDecoder().decode(t)}'`)
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}`
}

/** A copy (not a view: `Buffer#slice` would share the caller's memory). */
const copyOf = (bytes: Uint8Array): Uint8Array => Uint8Array.prototype.slice.call(bytes)

/** A u64 length field in decimal, exact even above 2^53. */
const exactU64 = (lo: number, hi: number): string => ((BigInt(hi) << 32n) | BigInt(lo)).toString()

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export class NarDecoder {
  private readonly limits: Ev.NarLimits
  private state = MAGIC
  private phase = LEN
  /** absolute offset of the current chunk's first byte */
  private base = 0
  /** absolute offset of the string being read (its length field) */
  private fieldOffset = 0
  private readonly lenBytes = new Uint8Array(8)
  private lenFill = 0
  private strLen = 0
  private strFill = 0
  /** where a string split across chunks is put together; made on first use (a NAR checked whole never needs it) */
  private scratchBytes: Uint8Array | undefined
  /** the finished string when it lay whole inside one chunk (no copy) */
  private view: Uint8Array | undefined
  private remaining = 0
  private padLeft = 0
  private executable = false
  /** previous entry name of each open directory (null before the first entry) */
  private readonly prevNames: Array<Uint8Array | null> = []
  private failed: BadNar | undefined

  constructor(limits: Ev.NarLimits = Ev.defaultLimits) {
    this.limits = limits
  }

  private get scratch(): Uint8Array {
    return this.scratchBytes ??= new Uint8Array(Math.max(this.limits.maxNameLength, this.limits.maxTargetLength, maxTokenLength))
  }

  /** Total bytes consumed so far. */
  get offset(): number { return this.base }

  /** True once the whole archive has been read. */
  get done(): boolean { return this.state === DONE }

  private fail(offset: number, reason: string): BadNar {
    this.failed = new BadNar({ offset, reason })
    return this.failed
  }

  push(chunk: Uint8Array, out: Array<Ev.NarEvent>): BadNar | undefined {
    if (this.failed) return this.failed
    const n = chunk.length
    let p = 0
    while (p < n) {
      switch (this.phase) {
        case LEN: {
          if (this.state === DONE) return this.fail(this.base + p, "trailing bytes after the end of the archive")
          let lo: number, hi: number
          if (this.lenFill === 0 && p + 8 <= n) {
            this.fieldOffset = this.base + p
            lo = (chunk[p]! | chunk[p + 1]! << 8 | chunk[p + 2]! << 16 | chunk[p + 3]! << 24) >>> 0
            hi = (chunk[p + 4]! | chunk[p + 5]! << 8 | chunk[p + 6]! << 16 | chunk[p + 7]! << 24) >>> 0
            p += 8
          } else {
            if (this.lenFill === 0) this.fieldOffset = this.base + p
            const take = Math.min(8 - this.lenFill, n - p)
            this.lenBytes.set(chunk.subarray(p, p + take), this.lenFill)
            this.lenFill += take
            p += take
            if (this.lenFill < 8) break
            this.lenFill = 0
            const b = this.lenBytes
            lo = (b[0]! | b[1]! << 8 | b[2]! << 16 | b[3]! << 24) >>> 0
            hi = (b[4]! | b[5]! << 8 | b[6]! << 16 | b[7]! << 24) >>> 0
          }
          const error = this.onLength(lo, hi, out)
          if (error) return error
          break
        }
        case BODY: {
          const need = this.strLen - this.strFill
          const take = Math.min(need, n - p)
          if (this.strFill === 0 && take === need) {
            this.view = chunk.subarray(p, p + take)
          } else {
            this.scratch.set(chunk.subarray(p, p + take), this.strFill)
            this.view = undefined
          }
          this.strFill += take
          p += take
          if (this.strFill === this.strLen) {
            const error = this.startPadding(this.strLen, out)
            if (error) return error
          }
          break
        }
        case STREAM: {
          const take = Math.min(this.remaining, n - p)
          out.push({ _tag: "Contents", bytes: chunk.subarray(p, p + take) })
          this.remaining -= take
          p += take
          if (this.remaining === 0) {
            const error = this.startPadding(this.strLen, out)
            if (error) return error
          }
          break
        }
        case PAD: {
          while (this.padLeft > 0 && p < n) {
            if (chunk[p] !== 0) return this.fail(this.base + p, "non-zero padding")
            this.padLeft--
            p++
          }
          if (this.padLeft === 0) {
            const error = this.onString(out)
            if (error) return error
          }
          break
        }
      }
    }
    if (this.view !== undefined) {
      // a string read whole from this chunk still waits for its padding: keep a copy, the caller may reuse the chunk
      this.scratch.set(this.view, 0)
      this.view = undefined
    }
    this.base += n
    return undefined
  }

  /** Call when the input has ended: fails if the archive is incomplete. */
  end(): BadNar | undefined {
    if (this.failed) return this.failed
    if (this.state === DONE) return undefined
    const where = this.phase === LEN && this.lenFill === 0 ? describe(this.state) : `the rest of ${describe(this.state)}`
    return this.fail(this.base, `truncated archive: expected ${where}`)
  }

  /** The string's bytes are in: read its padding next (or finish it now when there is none). */
  private startPadding(length: number, out: Array<Ev.NarEvent>): BadNar | undefined {
    this.padLeft = (8 - (length & 7)) & 7
    this.phase = PAD
    return this.padLeft === 0 ? this.onString(out) : undefined
  }

  /** The length field of the next string has been read: check it against what the grammar allows. */
  private onLength(lo: number, hi: number, out: Array<Ev.NarEvent>): BadNar | undefined {
    const state = this.state
    this.strFill = 0
    this.view = undefined
    if (state === CONTENTS) {
      if (hi > 0x1fffff) return this.fail(this.fieldOffset, `file size ${exactU64(lo, hi)} is larger than 2^53 - 1`)
      const size = hi * 4294967296 + lo
      out.push({ _tag: "File", executable: this.executable, size })
      this.strLen = size
      this.remaining = size
      if (size === 0) return this.startPadding(0, out)
      this.phase = STREAM
      return undefined
    }
    const max = state === NAME ? this.limits.maxNameLength : state === TARGET ? this.limits.maxTargetLength : maxTokenLength
    if (hi !== 0 || lo > max) {
      const size = exactU64(lo, hi)
      if (state === NAME) return this.fail(this.fieldOffset, `entry name of ${size} bytes is longer than ${max}`)
      if (state === TARGET) return this.fail(this.fieldOffset, `symlink target of ${size} bytes is longer than ${max}`)
      return this.badToken(`a string of ${size} bytes`)
    }
    if (state !== NAME && state !== TARGET && !expected[state]!.some((t) => t.length === lo)) {
      return this.badToken(`a string of ${lo} bytes`)
    }
    this.strLen = lo
    if (lo === 0) return this.startPadding(0, out)
    this.phase = BODY
    return undefined
  }

  private badToken(got: string): BadNar {
    if (this.state === MAGIC) return this.fail(0, "not a NAR: it does not start with 'nix-archive-1'")
    if (this.state === DONE) return this.fail(this.fieldOffset, "trailing bytes after the end of the archive")
    return this.fail(this.fieldOffset, `expected ${describe(this.state)}, got ${got}`)
  }

  /** A whole string (and its padding) has been read: interpret it in the current grammar state. */
  private onString(out: Array<Ev.NarEvent>): BadNar | undefined {
    this.phase = LEN
    const state = this.state
    if (state === CONTENTS) {
      out.push(Ev.fileEnd)
      this.state = NODE_CLOSE
      return undefined
    }
    const s = this.view ?? this.scratch.subarray(0, this.strLen)
    this.view = undefined
    switch (state) {
      case NAME: {
        const reason = Ev.invalidNameReason(s, this.limits.maxNameLength)
        if (reason) return this.fail(this.fieldOffset, reason)
        const depth = this.prevNames.length - 1
        const prev = this.prevNames[depth]!
        if (prev !== null) {
          const order = Ev.compareBytes(prev, s)
          if (order === 0) return this.fail(this.fieldOffset, `duplicate entry name '${new TextDecoder().decode(s)}'`)
          if (order > 0) return this.fail(this.fieldOffset, `entry '${new TextDecoder().decode(s)}' is out of order (names must be sorted bytewise)`)
        }
        const name = copyOf(s)
        this.prevNames[depth] = name
        out.push({ _tag: "Entry", name })
        this.state = NODE_KW
        return undefined
      }
      case TARGET: {
        const reason = Ev.invalidTargetReason(s, this.limits.maxTargetLength)
        if (reason) return this.fail(this.fieldOffset, reason)
        out.push({ _tag: "Symlink", target: copyOf(s) })
        this.state = NODE_CLOSE
        return undefined
      }
    }
    const accepted = expected[state]!
    let match = -1
    for (let i = 0; i < accepted.length; i++) if (sameBytes(accepted[i]!, s)) { match = i; break }
    if (match < 0) return this.badToken(`'${new TextDecoder().decode(s).replace(/[^\x20-\x7e]/g, "?")}'`)
    switch (state) {
      case MAGIC: this.state = OPEN; break
      case OPEN: this.state = TYPE_KW; break
      case TYPE_KW: this.state = TYPE; break
      case TYPE:
        if (match === 0) { this.executable = false; this.state = REG_FIELD }
        else if (match === 1) this.state = TARGET_KW
        else {
          if (this.prevNames.length >= this.limits.maxDepth) {
            return this.fail(this.fieldOffset, `directories nested deeper than ${this.limits.maxDepth} levels`)
          }
          this.prevNames.push(null)
          out.push(Ev.directory)
          this.state = DIR_FIELD
        }
        break
      case REG_FIELD:
        if (match === 0) { this.executable = true; this.state = EXEC_VALUE }
        else this.state = CONTENTS
        break
      case EXEC_VALUE: this.state = CONTENTS_KW; break
      case CONTENTS_KW: this.state = CONTENTS; break
      case NODE_CLOSE: this.nodeDone(); break
      case TARGET_KW: this.state = TARGET; break
      case DIR_FIELD:
        if (match === 0) this.state = ENTRY_OPEN
        else {
          this.prevNames.pop()
          out.push(Ev.directoryEnd)
          this.nodeDone()
        }
        break
      case ENTRY_OPEN: this.state = NAME_KW; break
      case NAME_KW: this.state = NAME; break
      case NODE_KW: this.state = OPEN; break
      case ENTRY_CLOSE: this.state = DIR_FIELD; break
    }
    return undefined
  }

  private nodeDone(): void {
    this.state = this.prevNames.length === 0 ? DONE : ENTRY_CLOSE
  }
}

/** Decodes one NAR from a byte stream into events; fails with `BadNar` on any malformed input. */
export const decodeNar = <E, R>(
  bytes: Stream.Stream<Uint8Array, E, R>,
  limits: Ev.NarLimits = Ev.defaultLimits
): Stream.Stream<Ev.NarEvent, E | BadNar, R> =>
  transduce(bytes, () => {
    const decoder = new NarDecoder(limits)
    return { push: (chunk, out) => decoder.push(chunk, out), end: () => decoder.end() }
  })

/** Decodes a whole NAR held in memory. */
export const decodeNarBytes = (bytes: Uint8Array, limits: Ev.NarLimits = Ev.defaultLimits): { events: Array<Ev.NarEvent>; error: BadNar | undefined } => {
  const decoder = new NarDecoder(limits)
  const events: Array<Ev.NarEvent> = []
  const error = decoder.push(bytes, events) ?? decoder.end()
  return { events, error }
}
