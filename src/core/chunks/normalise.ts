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

/** A copy (Buffer#slice would give a view of a Buffer, not a copy). */
const copyOf = (bytes: Uint8Array): Uint8Array => Uint8Array.prototype.slice.call(bytes)

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
  /** The last bytes seen (fewer than 32), held back: a hash may start in them. */
  #carry: Uint8Array = new Uint8Array(0)
  /** Absolute offset of the first byte of `#carry`. */
  #base = 0
  /** No match may start before this absolute offset (the end of the last one). */
  #next = 0

  /** `hashParts`: the path's own hash part and its references' (other strings are ignored). */
  constructor(hashParts: Iterable<string>) {
    this.#candidates = new Map([...hashParts].filter(isHashPart).map((h, i) => [h, i]))
  }

  /**
   * Normalises the next piece; returns the bytes that are final (all but the last 31 seen), as
   * pieces: views of the input where nothing was replaced, copies where something was (the input
   * is never modified).
   */
  push(chunk: Uint8Array): Array<Uint8Array> {
    if (this.#candidates.size === 0) return chunk.length > 0 ? [chunk] : []
    const keep = HASH_LENGTH - 1
    if (chunk.length < HASH_LENGTH) {
      // a short piece: joined with what is held back (rare)
      const joined = new Uint8Array(this.#carry.length + chunk.length)
      joined.set(this.#carry, 0)
      joined.set(chunk, this.#carry.length)
      const ready = Math.max(0, joined.length - keep)
      this.#scan(joined, this.#base, ready, (i) => joined.set(FILLER, i))
      this.#carry = joined.slice(ready)
      this.#base += ready
      return ready > 0 ? [joined.subarray(0, ready)] : []
    }
    const out: Array<Uint8Array> = []
    let piece = chunk
    let owned = false
    if (this.#carry.length > 0) {
      // windows that start in the held-back bytes, looked at in a small joined buffer
      const joined = new Uint8Array(this.#carry.length + keep)
      joined.set(this.#carry, 0)
      joined.set(chunk.subarray(0, keep), this.#carry.length)
      const before = this.positions.length
      this.#scan(joined, this.#base, this.#carry.length, (i) => joined.set(FILLER, i))
      if (this.positions.length > before) {
        // a hash across the boundary: its tail lies in the piece, which is copied and patched
        piece = copyOf(chunk)
        owned = true
        piece.set(joined.subarray(this.#carry.length), 0)
      }
      out.push(joined.subarray(0, this.#carry.length))
    }
    const base = this.#base + this.#carry.length
    const source = piece
    this.#scan(source, base, source.length, (i) => {
      if (!owned) { piece = copyOf(source); owned = true }
      piece.set(FILLER, i)
    })
    out.push(piece.subarray(0, piece.length - keep))
    this.#carry = copyOf(piece.subarray(piece.length - keep))
    this.#base = base + piece.length - keep
    return out.filter((p) => p.length > 0)
  }

  /** The bytes still held back. */
  end(): Uint8Array {
    const out = this.#carry
    this.#base += out.length
    this.#carry = new Uint8Array(0)
    return out
  }

  /**
   * Looks at the windows of `buf` (at absolute offset `base`) that start before `limit` and fit in
   * it; `replace(i)` puts the filler at `i` (into `buf` or a copy: `buf` is read as it was).
   */
  #scan(buf: Uint8Array, base: number, limit: number, replace: (i: number) => void): void {
    const text = Buffer.from(buf.buffer, buf.byteOffset, buf.length)
    let i = Math.max(0, this.#next - base)
    while (i < limit && i + HASH_LENGTH <= buf.length) {
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
        this.positions.push({ offset: base + i, index })
        replace(i)
        i += HASH_LENGTH
        this.#next = base + i
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

  /**
   * What putting the hashes back into bytes [start, end) of the NAR takes: the bytes to write at each
   * offset from `start` (the parts of hashes that fall inside). `from`: the first position that
   * may be concerned (positions are in order), to skip the earlier ones.
   */
  static patches(hashes: ReadonlyArray<Uint8Array>, positions: ReadonlyArray<Position>, start: number, end: number, from = 0): Array<{ readonly at: number; readonly bytes: Uint8Array }> {
    const out: Array<{ at: number; bytes: Uint8Array }> = []
    for (let k = from; k < positions.length; k++) {
      const p = positions[k]!
      if (p.offset >= end) break
      const a = Math.max(p.offset, start)
      const b = Math.min(p.offset + HASH_LENGTH, end)
      if (a < b) out.push({ at: a - start, bytes: hashes[p.index]!.subarray(a - p.offset, b - p.offset) })
    }
    return out
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
        if (out === piece) out = copyOf(piece)
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
