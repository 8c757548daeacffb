/**
 * Compact copies of what a binary cache keeps per path for the life of a store (a copy of a closure
 * of 10,000 paths keeps them all until it is done): store paths are interned, so a path named by
 * many narinfos (as a reference of each) is one object with one hash part and one name; digests
 * are 32-byte views of shared slabs, not an ArrayBuffer each; strings are flat copies, not views of
 * the narinfo text they were cut from (V8 makes a substring of 13 or more characters such a view,
 * which keeps the whole text alive).
 */
import type * as Hash from "../../core/hash.ts"
import { ownString } from "../../core/own-string.ts"
import type * as StorePath from "../../core/store-path.ts"

/**
 * 64 SHA-256 digests a slab: most of the ArrayBuffer objects and backing stores saved, and a slab
 * pinned by one digest a long-lived store still uses (the rest evicted) wastes at most 2 KiB.
 */
const slabBytes = 2048

export class CompactTable {
  private readonly paths = new Map<string, StorePath.StorePath>()
  private slab = new Uint8Array(0)
  private used = 0

  private readonly maxPaths: number

  /** @param maxPaths interned paths kept at most (all are forgotten when more would be kept). */
  constructor(maxPaths: number) { this.maxPaths = maxPaths }

  /** The one object for this store path (its strings flat copies). */
  path(p: StorePath.StorePath): StorePath.StorePath {
    const found = this.paths.get(p.hashPart)
    if (found !== undefined && found.name === p.name) return found
    const own: StorePath.StorePath = { hashPart: ownString(p.hashPart), name: ownString(p.name) }
    if (found === undefined) {
      if (this.paths.size >= this.maxPaths) this.paths.clear()
      this.paths.set(own.hashPart, own)
    }
    return own
  }

  /** The digest with its bytes in a shared slab. */
  hash(h: Hash.Hash): Hash.Hash {
    const n = h.bytes.length
    if (n > 64) return h
    if (this.used + n > this.slab.length) { this.slab = new Uint8Array(slabBytes); this.used = 0 }
    const bytes = this.slab.subarray(this.used, this.used + n)
    bytes.set(h.bytes)
    this.used += n
    return { algorithm: h.algorithm, bytes }
  }
}
