/**
 * Rewriting hash parts in a byte stream (a NAR, or anything else): every occurrence of a key of
 * the map is replaced by its value, which has the same length, so sizes and offsets never change
 * (self-references of content-addressed outputs, moving a path to another hash).
 *
 * Matching is leftmost-first and non-overlapping over the ORIGINAL bytes, all keys at once (a
 * replacement is never matched again). It works across chunk boundaries and runs in linear time: a
 * rolling hash of the current window is looked up in a table of the keys' hashes, and only a hit is
 * compared byte by byte. At most `length - 1` bytes are held back between chunks.
 */
import { Result, Stream } from "effect"
import { InvalidRewrite } from "./errors.ts"
import { transduce } from "./transduce.ts"

const BASE = 0x01000193 // the rolling hash's multiplier (an odd prime), arithmetic mod 2^32

interface Rule { readonly from: Uint8Array; readonly to: Uint8Array }

export class HashRewriter {
  /** the common length of every key and value */
  readonly length: number
  private readonly rules = new Map<number, Array<Rule>>()
  /** BASE^(length-1): the weight of the byte that leaves the window */
  private readonly topWeight: number
  /** bytes held back from the previous chunk (a match may start in them) */
  private carry = new Uint8Array(0)
  /** occurrences replaced so far */
  replaced = 0
  /** bytes released so far (the offset of the next released byte) */
  private released = 0
  /** where each replaced occurrence started, when asked for (`recordPositions`) */
  readonly positions: Array<number> | undefined

  private readonly pairs: ReadonlyArray<readonly [Uint8Array, Uint8Array]>

  private constructor(pairs: ReadonlyArray<readonly [Uint8Array, Uint8Array]>, length: number, recordPositions: boolean) {
    this.pairs = pairs
    this.length = length
    this.positions = recordPositions ? [] : undefined
    let w = 1
    for (let i = 1; i < length; i++) w = Math.imul(w, BASE)
    this.topWeight = w >>> 0
    for (const [from, to] of pairs) {
      const h = this.hashOf(from, 0)
      const bucket = this.rules.get(h)
      if (bucket) bucket.push({ from, to })
      else this.rules.set(h, [{ from, to }])
    }
  }

  /**
   * A rewriter for `map` (old → new); all keys and values must have the same non-zero byte length.
   * With `recordPositions`, the offset of every replaced occurrence is kept in `positions`.
   */
  static make(
    map: ReadonlyMap<string, string | Uint8Array> | Iterable<readonly [string, string | Uint8Array]>,
    options: { readonly recordPositions?: boolean } = {}
  ): Result.Result<HashRewriter, InvalidRewrite> {
    const pairs: Array<readonly [Uint8Array, Uint8Array]> = []
    let length = -1
    for (const [from, to] of map) {
      const a = Buffer.from(from), b = typeof to === "string" ? Buffer.from(to) : to
      if (length < 0) length = a.length
      if (a.length === 0) return Result.fail(new InvalidRewrite({ reason: "an empty string cannot be rewritten" }))
      if (a.length !== length || b.length !== length) {
        return Result.fail(new InvalidRewrite({ reason: `'${from}' → '${to}': every string and its replacement must be ${length} bytes long` }))
      }
      pairs.push([a, b]) // identities too: they still take their bytes out of other matches
    }
    return Result.succeed(new HashRewriter(pairs, Math.max(length, 1), options.recordPositions ?? false))
  }

  /** A rewriter with the same rules and nothing held back (for another stream). */
  fresh(): HashRewriter {
    return new HashRewriter(this.pairs, this.length, this.positions !== undefined)
  }

  private hashOf(bytes: Uint8Array, at: number): number {
    let h = 0
    for (let i = 0; i < this.length; i++) h = (Math.imul(h, BASE) + bytes[at + i]!) >>> 0
    return h
  }

  /** The rule matching the window at `at` whose rolling hash is `h`, if any. */
  private ruleAt(bytes: Uint8Array, at: number, h: number): Rule | undefined {
    const bucket = this.rules.get(h)
    if (bucket === undefined) return undefined
    outer: for (const rule of bucket) {
      for (let i = 0; i < this.length; i++) if (bytes[at + i] !== rule.from[i]) continue outer
      return rule
    }
    return undefined
  }

  /** Rewrites the next chunk; appends what can be released (a fresh array, never the input) to `out`. */
  push(chunk: Uint8Array, out: Array<Uint8Array>): undefined {
    if (chunk.length === 0) return undefined
    const buf = new Uint8Array(this.carry.length + chunk.length)
    buf.set(this.carry, 0)
    buf.set(chunk, this.carry.length)
    const next = this.rules.size === 0 ? Math.max(0, buf.length - this.length + 1) : this.scan(buf)
    if (next > 0) out.push(buf.subarray(0, next))
    this.released += next
    this.carry = buf.slice(next) // `buf` is a plain Uint8Array: slice copies
    return undefined
  }

  /** Replaces matches in `buf` in place; returns the first position not yet settled. */
  private scan(buf: Uint8Array): number {
    const L = this.length
    const last = buf.length - L // last window start
    let p = 0
    while (p <= last) {
      let h = this.hashOf(buf, p)
      for (;;) {
        const rule = this.ruleAt(buf, p, h)
        if (rule !== undefined) {
          buf.set(rule.to, p)
          this.replaced++
          this.positions?.push(this.released + p)
          p += L
          break
        }
        if (p === last) return last + 1
        h = (Math.imul((h - Math.imul(buf[p]!, this.topWeight)) >>> 0, BASE) + buf[p + L]!) >>> 0
        p++
      }
    }
    return Math.max(p, 0)
  }

  /** The input has ended: releases the held-back bytes. */
  end(out: Array<Uint8Array>): undefined {
    if (this.carry.length > 0) out.push(this.carry)
    this.released += this.carry.length
    this.carry = new Uint8Array(0)
    return undefined
  }
}

/** Rewrites a whole buffer (a fresh copy; the input is not changed). */
export const rewriteBytes = (bytes: Uint8Array, map: ReadonlyMap<string, string>): Result.Result<Uint8Array, InvalidRewrite> =>
  Result.map(HashRewriter.make(map), (rewriter) => {
    const out: Array<Uint8Array> = []
    rewriter.push(bytes, out)
    rewriter.end(out)
    return out.length === 1 ? out[0]! : new Uint8Array(Buffer.concat(out))
  })

/**
 * A stream transform replacing hash parts (old → new, all the same length) anywhere in the bytes,
 * across chunk boundaries; fails with InvalidRewrite if the map mixes lengths.
 */
export const rewriteHashParts = (map: ReadonlyMap<string, string>) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | InvalidRewrite, R> => {
    const made = HashRewriter.make(map)
    if (Result.isFailure(made)) return Stream.fail(made.failure)
    return transduce<Uint8Array, Uint8Array, E, R, never>(self, () => {
      const rewriter = made.success.fresh()
      return { push: (chunk, out) => rewriter.push(chunk, out), end: (out) => rewriter.end(out) }
    })
  }
