/**
 * NarWriter: appends NAR wire data (length-prefixed, zero-padded strings) to large output chunks.
 * Small pieces are copied into the current chunk; big file contents pass through as they are.
 * Flushed chunks are never written to again, so a consumer may keep them.
 *
 * `narWriterClass` is SELF-CONTAINED on purpose (no imports, no outer references): from-path.ts ships
 * its source text to worker threads. It uses only JS and Node globals (Buffer, TextEncoder).
 */
export function narWriterClass() {
  const padding = (n: number): number => (8 - (n & 7)) & 7
  const text = new TextEncoder()
  const wire = (...parts: ReadonlyArray<string>): Uint8Array => {
    const encoded = parts.map((s) => text.encode(s))
    const out = new Uint8Array(encoded.reduce((n, b) => n + 8 + b.length + padding(b.length), 0))
    let at = 0
    for (const b of encoded) {
      out[at] = b.length
      out.set(b, at + 8)
      at += 8 + b.length + padding(b.length)
    }
    return out
  }
  /** Pre-encoded token sequences, in the order they appear in a NAR. */
  const seq = {
    magic: wire("nix-archive-1"),
    close: wire(")"),
    directory: wire("(", "type", "directory"),
    entryName: wire("entry", "(", "name"),
    node: wire("node"),
    regular: wire("(", "type", "regular", "contents"),
    executable: wire("(", "type", "regular", "executable", "", "contents"),
    symlink: wire("(", "type", "symlink", "target"),
    closeClose: wire(")", ")")
  }

  return class NarWriter {
    static readonly seq = seq
    static readonly padding = padding
    /** Contents at least this long are passed through instead of copied. */
    static readonly passThrough = 32 * 1024

    chunkSize: number
    buf: Buffer
    start = 0
    pos = 0
    /** bytes written so far (flushed or not) */
    written = 0
    chunks: Array<Uint8Array> = []

    /** `initial`: a buffer to fill first (recycled memory is much cheaper than fresh pages). */
    constructor(chunkSize = 256 * 1024, initial?: ArrayBuffer) {
      this.chunkSize = chunkSize
      this.buf = initial ? Buffer.from(initial) : Buffer.allocUnsafeSlow(chunkSize)
    }

    /** Makes room for n contiguous bytes at `pos`. */
    ensure(n: number): void {
      if (this.pos + n <= this.buf.length) return
      this.flush()
      this.buf = Buffer.allocUnsafeSlow(Math.max(this.chunkSize, n))
      this.start = this.pos = 0
    }

    /** Ends the current chunk at `pos`; later bytes go after it, never over it. */
    flush(): void {
      if (this.pos > this.start) {
        this.chunks.push(this.buf.subarray(this.start, this.pos))
        this.start = this.pos
      }
    }

    /** Flushes and hands over the finished chunks. */
    take(): Array<Uint8Array> {
      this.flush()
      const out = this.chunks
      this.chunks = []
      return out
    }

    raw(bytes: Uint8Array): void {
      const n = bytes.length
      if (n >= NarWriter.passThrough) {
        this.flush()
        this.chunks.push(bytes)
      } else {
        this.ensure(n)
        this.buf.set(bytes, this.pos)
        this.pos += n
      }
      this.written += n
    }

    u64(n: number): void {
      this.ensure(8)
      const b = this.buf
      const p = this.pos
      const lo = n >>> 0
      const hi = (n - lo) / 4294967296
      b[p] = lo; b[p + 1] = lo >>> 8; b[p + 2] = lo >>> 16; b[p + 3] = lo >>> 24
      b[p + 4] = hi; b[p + 5] = hi >>> 8; b[p + 6] = hi >>> 16; b[p + 7] = hi >>> 24
      this.pos = p + 8
      this.written += 8
    }

    zeros(n: number): void {
      if (n === 0) return
      this.ensure(n)
      const b = this.buf
      let p = this.pos
      if (n <= 16) while (p < this.pos + n) b[p++] = 0
      else b.fill(0, p, p + n)
      this.pos += n
      this.written += n
    }

    /** A length-prefixed, padded string. */
    string(bytes: Uint8Array): void {
      this.u64(bytes.length)
      this.raw(bytes)
      this.zeros(padding(bytes.length))
    }

    /** A length-prefixed, padded string given as JS text (written as UTF-8). */
    text(s: string): void {
      this.ensure(16 + s.length * 3)
      const n = this.buf.write(s, this.pos + 8, "utf8")
      this.u64(n)
      this.pos += n
      this.written += n
      this.zeros(padding(n))
    }

    /** Contents' padding after a file of `size` bytes. */
    pad(size: number): void {
      this.zeros(padding(size))
    }
  }
}

export const NarWriter = narWriterClass()
export type NarWriter = InstanceType<typeof NarWriter>
