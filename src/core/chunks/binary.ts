/**
 * Little binary helpers for the chunk store's formats: unsigned LEB128 varints (up to 2^53) and a
 * bounds-checked reader whose every read either succeeds or records why it could not (so decoders
 * are total: no throw, no read past the end, no allocation larger than the input).
 */

export class ByteWriter {
  #buffer = new Uint8Array(256)
  #length = 0

  #room(n: number): void {
    if (this.#length + n <= this.#buffer.length) return
    let size = this.#buffer.length * 2
    while (size < this.#length + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.#buffer.subarray(0, this.#length))
    this.#buffer = next
  }

  byte(b: number): this {
    this.#room(1)
    this.#buffer[this.#length++] = b & 0xff
    return this
  }

  /** An unsigned integer (< 2^53) as LEB128. */
  varint(value: number): this {
    let n = value
    this.#room(8)
    while (n >= 0x80) {
      this.#buffer[this.#length++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.#buffer[this.#length++] = n
    return this
  }

  bytes(b: Uint8Array): this {
    this.#room(b.length)
    this.#buffer.set(b, this.#length)
    this.#length += b.length
    return this
  }

  /** A length-prefixed UTF-8 string. */
  string(s: string): this {
    const b = new TextEncoder().encode(s)
    return this.varint(b.length).bytes(b)
  }

  finish(): Uint8Array {
    return this.#buffer.slice(0, this.#length)
  }
}

export class ByteReader {
  readonly #data: Uint8Array
  #at = 0
  /** Why reading stopped; once set, every read returns a zero value. */
  error: string | undefined

  constructor(data: Uint8Array) {
    this.#data = data
  }

  get offset(): number { return this.#at }
  get remaining(): number { return this.#data.length - this.#at }

  fail(reason: string): void {
    this.error ??= `${reason} (at byte ${this.#at})`
  }

  byte(): number {
    if (this.error !== undefined) return 0
    if (this.#at >= this.#data.length) { this.fail("unexpected end"); return 0 }
    return this.#data[this.#at++]!
  }

  varint(): number {
    let value = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = this.byte()
      if (this.error !== undefined) return 0
      value += (b & 0x7f) * scale
      if (value > Number.MAX_SAFE_INTEGER) { this.fail("integer too large"); return 0 }
      if ((b & 0x80) === 0) return value
      scale *= 0x80
    }
    this.fail("integer too long")
    return 0
  }

  bytes(n: number): Uint8Array {
    if (this.error !== undefined) return new Uint8Array(0)
    if (n > this.remaining) { this.fail(`wanted ${n} bytes, ${this.remaining} left`); return new Uint8Array(0) }
    const out = Uint8Array.prototype.slice.call(this.#data, this.#at, this.#at + n)
    this.#at += n
    return out
  }

  string(): string {
    const n = this.varint()
    const b = this.bytes(n)
    if (this.error !== undefined) return ""
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(b)
    } catch {
      this.fail("invalid UTF-8")
      return ""
    }
  }

  /** A count of items each at least `minSize` bytes long: refused if they cannot all fit. */
  count(minSize: number, what: string): number {
    const n = this.varint()
    if (this.error === undefined && n * minSize > this.remaining) { this.fail(`${n} ${what} cannot fit in ${this.remaining} bytes`); return 0 }
    return n
  }

  end(): void {
    if (this.error === undefined && this.remaining > 0) this.fail(`${this.remaining} trailing bytes`)
  }
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex")

export const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"))
