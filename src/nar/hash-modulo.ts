/**
 * Hashing "modulo" a self-reference, as Nix 2.8's `HashModuloSink` does for content-addressed
 * outputs: every occurrence of the output's own (temporary) hash part is hashed as NUL bytes, and
 * then the offset of each occurrence is hashed too (`|<offset>`), so that a NAR with a
 * self-reference and one with the same bytes already zeroed do not collide. The result does not
 * depend on the hash part the output was built under, so it can name the final path.
 */
import type * as Hash from "../core/hash.ts"
import { hasher } from "../core/hash.ts"
import { HashRewriter } from "./rewrite.ts"

export interface HashModulo {
  readonly update: (chunk: Uint8Array) => void
  readonly digest: () => Hash.Hash
}

/** A hasher of `algorithm` over bytes, modulo occurrences of `modulus` (a store path's hash part). */
export const hashModulo = (algorithm: Hash.HashAlgorithm, modulus: string): HashModulo => {
  const h = hasher(algorithm)
  const made = HashRewriter.make([[modulus, new Uint8Array(Buffer.byteLength(modulus))]], { recordPositions: true })
  // The modulus is a non-empty string and its replacement has its length: make cannot fail.
  const rewriter = made._tag === "Success" ? made.success : undefined!
  const out: Array<Uint8Array> = []
  const drain = () => { for (const c of out) h.update(c); out.length = 0 }
  return {
    update: (chunk) => { rewriter.push(chunk, out); drain() },
    digest: () => {
      rewriter.end(out)
      drain()
      for (const pos of rewriter.positions!) h.update(Buffer.from(`|${pos}`))
      return h.digest()
    }
  }
}
