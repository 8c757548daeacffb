/**
 * Reference scanning: which of a set of candidate store-path hash parts (32 nix-base32
 * characters) occur anywhere in a byte stream, across chunk boundaries, in time linear in the
 * stream. Like Nix's scanner it looks at 32-byte windows and skips ahead past any byte that is
 * not a nix-base32 character, so most of the input is never compared at all.
 */
import { alphabet } from "../core/nixbase32.ts"

const hashLength = 32
const isBase32 = new Uint8Array(256)
for (let i = 0; i < alphabet.length; i++) isBase32[alphabet.charCodeAt(i)] = 1

export class ReferenceScanner {
  readonly #candidates: Set<string>
  readonly #found = new Set<string>()
  /** The last bytes of the previous chunk (fewer than 32), so hashes split across chunks are seen. */
  #tail = new Uint8Array(0)

  constructor(hashParts: Iterable<string>) {
    this.#candidates = new Set(hashParts)
  }

  push(chunk: Uint8Array): void {
    if (this.#candidates.size === 0 || this.#found.size === this.#candidates.size) return
    if (this.#tail.length > 0) {
      // windows that start in the previous chunk's tail and end in this one
      const boundary = concat(this.#tail, chunk.subarray(0, hashLength - 1))
      this.#scan(boundary, 0, this.#tail.length)
    }
    this.#scan(chunk, 0, chunk.length)
    // a copy: the caller may reuse the chunk (and Buffer#slice would not copy)
    if (chunk.length >= hashLength - 1) this.#tail = Uint8Array.prototype.slice.call(chunk, chunk.length - (hashLength - 1))
    else {
      const joined = concat(this.#tail, chunk)
      this.#tail = joined.slice(Math.max(0, joined.length - (hashLength - 1)))
    }
  }

  /** Checks every window starting in [from, to) that fits in `data`. */
  #scan(data: Uint8Array, from: number, to: number): void {
    let i = from
    while (i < to && i + hashLength <= data.length) {
      let j = hashLength - 1
      while (j >= 0 && isBase32[data[i + j]!] === 1) j--
      if (j >= 0) { i += j + 1; continue }
      const candidate = latin1(data, i)
      if (this.#candidates.has(candidate)) this.#found.add(candidate)
      i++
    }
  }

  /** The candidates seen so far. */
  found(): ReadonlyArray<string> {
    return [...this.#found]
  }
}

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

const latin1 = (data: Uint8Array, at: number): string => {
  let s = ""
  for (let k = 0; k < hashLength; k++) s += String.fromCharCode(data[at + k]!)
  return s
}

/** The hash parts among `candidates` that occur in `bytes`. */
export const scanReferences = (bytes: Uint8Array, candidates: Iterable<string>): ReadonlyArray<string> => {
  const scanner = new ReferenceScanner(candidates)
  scanner.push(bytes)
  return scanner.found()
}
