/** Streaming hash-part rewriting and reference scanning against naive whole-buffer versions, with random chunkings. */
import { Effect, Result, Stream } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { alphabet } from "../../src/core/nixbase32.ts"
import { InvalidRewrite } from "../../src/nar/errors.ts"
import { ReferenceScanner, scanReferences } from "../../src/nar/references.ts"
import { HashRewriter, rewriteBytes, rewriteHashParts } from "../../src/nar/rewrite.ts"
import { chunked } from "./support.ts"

/** Leftmost, non-overlapping, all keys at once, over the original bytes: the reference semantics. */
const naiveRewrite = (input: Uint8Array, map: ReadonlyMap<string, string>): Uint8Array => {
  const out = Buffer.from(input)
  const pairs = [...map].map(([a, b]) => [Buffer.from(a), Buffer.from(b)] as const)
  const length = pairs[0]?.[0].length ?? 1
  for (let i = 0; i + length <= out.length;) {
    const hit = pairs.find(([from]) => Buffer.from(input.subarray(i, i + length)).equals(from))
    if (hit) {
      hit[1].copy(out, i)
      i += length
    } else i++
  }
  return new Uint8Array(out)
}

const naiveScan = (input: Uint8Array, candidates: ReadonlyArray<string>): Array<string> =>
  candidates.filter((c) => Buffer.from(input).includes(Buffer.from(c)))

const arbHashPart = (chars: string, length: number) => fc.string({ unit: fc.constantFrom(...chars), minLength: length, maxLength: length })

/** Input built from pieces of the keys (whole, cut, repeated) and noise, so matches, near misses and overlaps are common. */
const arbInput = (keys: ReadonlyArray<string>) => fc.array(fc.oneof(
  fc.constantFrom(...keys).map((k) => Buffer.from(k)),
  fc.tuple(fc.constantFrom(...keys), fc.nat(), fc.nat()).map(([k, a, b]) => Buffer.from(k.slice(Math.min(a, b) % k.length, Math.max(a, b) % k.length + 1))),
  fc.uint8Array({ maxLength: 10 }).map((b) => Buffer.from(b))
), { maxLength: 30 }).map((parts) => new Uint8Array(Buffer.concat(parts)))

/** A rewrite map (old → new, all one length) and an input made to contain its keys. */
const arbCase = (chars: string, length: number) =>
  fc.uniqueArray(fc.tuple(arbHashPart(chars, length), arbHashPart(chars, length)), { minLength: 1, maxLength: 4, selector: ([a]) => a })
    .chain((pairs) => fc.tuple(fc.constant(new Map(pairs)), arbInput(pairs.map(([a]) => a)), fc.array(fc.nat(), { maxLength: 10 })))

const runStream = (chunks: ReadonlyArray<Uint8Array>, map: ReadonlyMap<string, string>) =>
  Effect.runPromise(Stream.runCollect(rewriteHashParts(map)(Stream.fromIterable(chunks))).pipe(
    Effect.map((out) => new Uint8Array(Buffer.concat([...out])))
  ))

describe("rewriteHashParts", () => {
  it("equals a naive whole-buffer replace, whatever the chunking (short keys over a tiny alphabet: many overlaps)", () => {
    fc.assert(fc.property(arbCase("ab", 3), ([map, input, cuts]) => {
      const expected = naiveRewrite(input, map)
      const rewriter = Result.getOrThrow(HashRewriter.make(map))
      const out: Array<Uint8Array> = []
      for (const chunk of chunked(input, cuts)) rewriter.push(chunk, out)
      rewriter.end(out)
      expect(Buffer.concat(out).equals(expected)).toBe(true)
      expect(Buffer.from(Result.getOrThrow(rewriteBytes(input, map))).equals(expected)).toBe(true)
    }), { numRuns: 2000 })
  })

  it("equals the naive replace for 32-character nix-base32 hash parts, through the Stream transform", async () => {
    await fc.assert(fc.asyncProperty(arbCase(alphabet, 32), async ([map, input, cuts]) => {
      expect(Buffer.from(await runStream(chunked(input, cuts), map)).equals(naiveRewrite(input, map))).toBe(true)
    }), { numRuns: 300 })
  })

  it("replaces across chunk boundaries at every split point", () => {
    const from = "0123456789abcdfghijklmnpqrsvwxyz", to = "zyxwvsrqpnmlkjihgfdcba9876543210"
    const input = Buffer.from(`/nix/store/${from}-foo and ${from}${from}.`)
    const expected = Buffer.from(`/nix/store/${to}-foo and ${to}${to}.`)
    for (let a = 0; a <= input.length; a++) {
      for (const b of [a, a + 1, a + 7, a + 31, a + 32]) {
        expect(Buffer.from(Result.getOrThrow(rewriteBytes(input, new Map([[from, to]])))).equals(expected)).toBe(true)
        const rewriter = Result.getOrThrow(HashRewriter.make(new Map([[from, to]])))
        const out: Array<Uint8Array> = []
        for (const chunk of chunked(input, [a, b])) rewriter.push(chunk, out)
        rewriter.end(out)
        expect(Buffer.concat(out).equals(expected), `split at ${a}, ${b}`).toBe(true)
        expect(rewriter.replaced).toBe(3)
      }
    }
  })

  it("does not change the input and holds back fewer bytes than a key", () => {
    const input = new Uint8Array(Buffer.from("xxAAAyy"))
    const rewriter = Result.getOrThrow(HashRewriter.make(new Map([["AAA", "BBB"]])))
    const out: Array<Uint8Array> = []
    rewriter.push(input, out)
    expect(Buffer.concat(out).toString()).toBe("xxBBB")
    rewriter.end(out)
    expect(Buffer.concat(out).toString()).toBe("xxBBByy")
    expect(Buffer.from(input).toString()).toBe("xxAAAyy")
  })

  it("rejects maps whose strings differ in length", async () => {
    for (const map of [new Map([["abc", "ab"]]), new Map([["abc", "abd"], ["ab", "ac"]]), new Map([["", ""]])]) {
      expect(Result.isFailure(HashRewriter.make(map))).toBe(true)
      const result = await Effect.runPromise(Effect.result(Stream.runDrain(rewriteHashParts(map)(Stream.make(new Uint8Array(3))))))
      expect(result._tag === "Failure" && result.failure).toBeInstanceOf(InvalidRewrite)
    }
  })

  it("is linear: a 16 MiB input of hash-like text is rewritten in one pass (no quadratic blow-up)", () => {
    const from = "0".repeat(31) + "1", to = "1".repeat(32)
    const input = new Uint8Array(16 << 20).fill(0x30) // all '0': every window is a near miss
    input.set(Buffer.from(from), input.length - 32)
    const out = Result.getOrThrow(rewriteBytes(input, new Map([[from, to]])))
    expect(Buffer.from(out.subarray(out.length - 32)).toString()).toBe(to)
    expect(out.subarray(0, out.length - 32).every((b) => b === 0x30)).toBe(true)
  })
})

describe("ReferenceScanner", () => {
  it("finds exactly the candidates a naive search finds, whatever the chunking", () => {
    const arb = fc.uniqueArray(arbHashPart(alphabet.slice(0, 4), 32), { minLength: 1, maxLength: 5 })
      .chain((keys) => fc.tuple(fc.constant(keys), arbInput(keys), fc.array(fc.nat(), { maxLength: 10 })))
    fc.assert(fc.property(arb, ([keys, input, cuts]) => {
      const scanner = new ReferenceScanner(keys)
      for (const chunk of chunked(input, cuts)) scanner.push(chunk)
      expect([...scanner.found()].sort()).toEqual(naiveScan(input, keys).sort())
      expect([...scanReferences(input, keys)].sort()).toEqual(naiveScan(input, keys).sort())
      // the same when every chunk arrives in one reused Buffer
      const reused = new ReferenceScanner(keys)
      const buffer = Buffer.alloc(input.length)
      for (const chunk of chunked(input, cuts)) {
        buffer.fill(0x41)
        buffer.set(chunk)
        reused.push(buffer.subarray(0, chunk.length))
      }
      expect([...reused.found()].sort()).toEqual(naiveScan(input, keys).sort())
    }), { numRuns: 1000 })
  })
})
