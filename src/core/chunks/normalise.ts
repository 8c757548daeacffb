/**
 * Store-path normalisation: before a NAR is chunked, every occurrence of the 32-character hash part
 * of its own path and of its references is replaced with a fixed filler, so that two builds whose
 * outputs differ only in those hashes (a mass rebuild) give the same bytes, and so the same chunks.
 * A position table (where each replacement was, and which hash it replaced) lets the exact NAR be
 * rebuilt byte for byte.
 *
 * Matching is leftmost-first and non-overlapping, across chunk boundaries, skipping ahead past any
 * byte that is not a nix-base32 character (as Nix's reference scanner does), so binary data is
 * mostly skipped 32 bytes at a time. At most 31 bytes are held back between pieces.
 */
import { alphabet } from "../nixbase32.ts"

export const HASH_LENGTH = 32

/** What replaces each hash: 'e' is not a nix-base32 character, so the filler is never a hash. */
export const FILLER = new Uint8Array(HASH_LENGTH).fill("e".charCodeAt(0))

const isBase32 = new Uint8Array(256)
for (let i = 0; i < alphabet.length; i++) isBase32[alphabet.charCodeAt(i)] = 1

/** One replacement: at byte `offset` of the NAR stood hash number `index` of the table. */
export interface Position {
  readonly offset: number
  readonly index: number
}

export const isHashPart = (s: string): boolean =>
  s.length === HASH_LENGTH && [...s].every((c) => c.charCodeAt(0) < 256 && isBase32[c.charCodeAt(0)] === 1)

export class Normaliser {
  readonly #candidates: Map<string, number>
  /** The hashes that occurred, in order of first occurrence (a position's `index` points here). */
  readonly hashes: Array<string> = []
  readonly #indexOf = new Map<string, number>()
  readonly positions: Array<Position> = []
  #carry = new Uint8Array(0)
  /** Absolute offset of the first byte of `#carry`. */
  #base = 0
  /** No match may start before this absolute offset (the end of the last one). */
  #next = 0

  /** `hashParts`: the path's own hash part and its references' (other strings are ignored). */
  constructor(hashParts: Iterable<string>) {
    this.#candidates = new Map([...hashParts].filter(isHashPart).map((h, i) => [h, i]))
  }

  /** Normalises the next piece; returns the bytes that are final (all but the last 31 seen). */
  push(chunk: Uint8Array): Uint8Array {
    if (this.#candidates.size === 0) return chunk
    const buf = new Uint8Array(this.#carry.length + chunk.length)
    buf.set(this.#carry, 0)
    buf.set(chunk, this.#carry.length)
    this.#scan(buf)
    const keep = Math.min(HASH_LENGTH - 1, buf.length)
    this.#carry = buf.slice(buf.length - keep)
    const out = buf.subarray(0, buf.length - keep)
    this.#base += out.length
    return out
  }

  /** The bytes still held back. */
  end(): Uint8Array {
    const out = this.#carry
    this.#base += out.length
    this.#carry = new Uint8Array(0)
    return out
  }

  #scan(buf: Uint8Array): void {
    const text = Buffer.from(buf.buffer, buf.byteOffset, buf.length)
    let i = Math.max(0, this.#next - this.#base)
    while (i + HASH_LENGTH <= buf.length) {
      let j = HASH_LENGTH - 1
      while (j >= 0 && isBase32[buf[i + j]!] === 1) j--
      if (j >= 0) { i += j + 1; continue }
      const candidate = text.toString("latin1", i, i + HASH_LENGTH)
      if (this.#candidates.has(candidate)) {
        let index = this.#indexOf.get(candidate)
        if (index === undefined) {
          index = this.hashes.length
          this.hashes.push(candidate)
          this.#indexOf.set(candidate, index)
        }
        this.positions.push({ offset: this.#base + i, index })
        buf.set(FILLER, i)
        i += HASH_LENGTH
        this.#next = this.#base + i
        continue
      }
      i++
    }
  }
}

/**
 * Puts the hashes back: fed the normalised NAR in order, in pieces of any size, returns each piece
 * as it was before normalisation (a copy when it had to be patched; the input is never modified).
 */
export class Denormaliser {
  readonly #hashes: ReadonlyArray<Uint8Array>
  readonly #positions: ReadonlyArray<Position>
  #offset = 0
  #next = 0

  constructor(hashes: ReadonlyArray<string>, positions: ReadonlyArray<Position>) {
    this.#hashes = hashes.map((h) => new Uint8Array(Buffer.from(h, "latin1")))
    this.#positions = positions
  }

  /** Whether bytes [start, end) of the NAR hold any replaced hash. */
  static touches(positions: ReadonlyArray<Position>, start: number, end: number, from = 0): boolean {
    for (let k = from; k < positions.length; k++) {
      const p = positions[k]!
      if (p.offset >= end) return false
      if (p.offset + HASH_LENGTH > start) return true
    }
    return false
  }

  /** Skips `n` bytes (a piece the caller passes on unpatched because it knows it holds no hash). */
  skip(n: number): void {
    this.#offset += n
    while (this.#next < this.#positions.length && this.#positions[this.#next]!.offset + HASH_LENGTH <= this.#offset) this.#next++
  }

  apply(piece: Uint8Array): Uint8Array {
    const start = this.#offset
    const end = start + piece.length
    let out = piece
    let k = this.#next
    while (k < this.#positions.length) {
      const p = this.#positions[k]!
      if (p.offset >= end) break
      const hash = this.#hashes[p.index]!
      const from = Math.max(p.offset, start)
      const to = Math.min(p.offset + HASH_LENGTH, end)
      if (from < to) {
        if (out === piece) out = piece.slice()
        out.set(hash.subarray(from - p.offset, to - p.offset), from - start)
      }
      if (p.offset + HASH_LENGTH <= end) k++
      else break
    }
    this.#next = k
    this.#offset = end
    return out
  }
}
