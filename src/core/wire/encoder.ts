/**
 * Encoding Nix's wire format into one growing buffer: u64 little-endian numbers, strings as a length
 * then the bytes zero-padded to a multiple of 8, lists as a count then the items.
 */
const utf8 = new TextEncoder()

export class WireWriter {
  private buf: Uint8Array
  private view: DataView
  private pos = 0

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial)
    this.view = new DataView(this.buf.buffer)
  }

  get length(): number { return this.pos }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u64(n: number | bigint | boolean): this {
    this.ensure(8)
    const v = typeof n === "bigint" ? n : BigInt(typeof n === "boolean" ? (n ? 1 : 0) : Math.max(0, Math.floor(n)))
    this.view.setBigUint64(this.pos, v, true)
    this.pos += 8
    return this
  }

  bool(b: boolean): this { return this.u64(b ? 1 : 0) }

  /** Bytes as they are (no length, no padding): a NAR, a frame's contents. */
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length)
    this.buf.set(bytes, this.pos)
    this.pos += bytes.length
    return this
  }

  string(s: string | Uint8Array): this {
    if (typeof s !== "string") {
      this.u64(s.length)
      this.raw(s)
      return this.pad(s.length)
    }
    // at most 3 bytes per UTF-16 unit
    this.ensure(8 + s.length * 3 + 8)
    const lengthAt = this.pos
    this.pos += 8
    const { written } = utf8.encodeInto(s, this.buf.subarray(this.pos))
    this.view.setBigUint64(lengthAt, BigInt(written), true)
    this.pos += written
    return this.pad(written)
  }

  strings(list: Iterable<string | Uint8Array>): this {
    const items = [...list]
    this.u64(items.length)
    for (const s of items) this.string(s)
    return this
  }

  private pad(n: number): this {
    const p = (8 - (n % 8)) % 8
    if (p === 0) return this
    this.ensure(p)
    this.buf.fill(0, this.pos, this.pos + p)
    this.pos += p
    return this
  }

  /** The bytes written so far (a copy), and the writer is reset. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos)
    this.pos = 0
    return out
  }
}

export const encode = (f: (w: WireWriter) => void): Uint8Array => {
  const w = new WireWriter()
  f(w)
  return w.take()
}

/** One frame of a framed stream (Nix's FramedSink): the length, then the bytes, no padding. */
export const frameHeader = (n: number): Uint8Array => encode((w) => w.u64(n))

/** The frame that ends a framed stream. */
export const endFrame: Uint8Array = frameHeader(0)
