/**
 * The chunk store's pure parts: FastCDC (TypeScript and WebAssembly cut identically, whatever the
 * pieces), normalisation round trips, and the binary formats (round trips; any bytes decode to a
 * value or a typed error).
 */
import { Result } from "effect"
import fc from "fast-check"
import { createHash } from "node:crypto"
import { zstdDecompressSync } from "node:zlib"
import { describe, expect, it } from "vitest"
import { alphabet } from "../../src/core/nixbase32.ts"
import { sha256 } from "../../src/core/chunks/sha256.ts"
import {
  Chunker, chunkLengths, decodeManifest, decodePackIndex, decodePathRecord, Denormaliser, encodeManifest, encodePackIndex,
  encodePathRecord, FILLER, makeJsCutter, makeWasmCutter, type Manifest, Normaliser, type PackEntry, rawZstdFrame, superFeatures,
  superFeatureSlot, usableAsBase, features, featuresJs
} from "../../src/core/chunks/index.ts"

const params = { min: 256, avg: 1024, max: 4096 }
const js = Result.getOrThrow(makeJsCutter(params))
const wasm = Result.getOrThrow(makeWasmCutter(params))

/** Deterministic pseudo-random bytes (a seed per test case). */
const pseudoRandom = (seed: number, n: number) => {
  const out = new Uint8Array(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; out[i] = x & 0xff }
  return out
}

const cutsOf = (data: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let at = 0
  for (const p of points) { out.push(data.subarray(at, p)); at = p }
  out.push(data.subarray(at))
  return out
}

const arbHash = fc.array(fc.constantFrom(...alphabet), { minLength: 32, maxLength: 32 }).map((cs) => cs.join(""))

describe("FastCDC", () => {
  it("cuts the same in TypeScript and WebAssembly, and whatever pieces the bytes come in", () => {
    fc.assert(fc.property(fc.integer(), fc.integer({ min: 0, max: 40_000 }), fc.array(fc.nat(), { maxLength: 8 }), (seed, n, cuts) => {
      const data = pseudoRandom(seed, n)
      const expected = chunkLengths(js, data)
      expect(chunkLengths(wasm, data)).toEqual(expected)
      const chunker = new Chunker(wasm)
      const got: Array<Uint8Array> = []
      for (const piece of cutsOf(data, cuts)) chunker.push(piece, (c) => got.push(c))
      chunker.end((c) => got.push(c))
      expect(got.map((c) => c.length)).toEqual(expected)
      expect(Buffer.compare(Buffer.concat(got), data)).toBe(0)
      // every chunk but the last is within [min, max]
      for (const len of expected.slice(0, -1)) { expect(len).toBeGreaterThan(params.min); expect(len).toBeLessThanOrEqual(params.max) }
    }), { numRuns: 200 })
  })

  it("finds the same boundaries after an insertion (content-defined)", () => {
    const data = pseudoRandom(7, 200_000)
    const edited = new Uint8Array([...data.subarray(0, 100_000), 1, 2, 3, ...data.subarray(100_000)])
    const ids = (d: Uint8Array) => {
      const out = new Set<string>()
      const chunker = new Chunker(wasm)
      const add = (c: Uint8Array) => out.add(createHash("sha256").update(c).digest("hex"))
      chunker.push(d, add)
      chunker.end(add)
      return out
    }
    const a = ids(data)
    const b = ids(edited)
    const shared = [...b].filter((id) => a.has(id)).length
    expect(shared).toBeGreaterThan(a.size - 4)
  })

  it("rejects impossible parameters", () => {
    expect(Result.isFailure(makeJsCutter({ min: 10, avg: 5, max: 20 }))).toBe(true)
    expect(Result.isFailure(makeWasmCutter({ min: 0, avg: 1024, max: 4096 }))).toBe(true)
    expect(Result.isFailure(makeWasmCutter({ min: 1, avg: 8, max: 4096 }))).toBe(true)
  })
})

describe("normalisation", () => {
  const arbCase = fc.record({
    hashes: fc.uniqueArray(arbHash, { minLength: 1, maxLength: 4 }),
    parts: fc.array(fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.nat({ max: 3 }), fc.constant("nix")), { maxLength: 30 }),
    cuts: fc.array(fc.nat(), { maxLength: 10 })
  })

  it("round-trips byte for byte, removes every occurrence, in any pieces", () => {
    fc.assert(fc.property(arbCase, ({ hashes, parts, cuts }) => {
      // a Buffer (whose slice() is a view): the normaliser must still never write into it
      const data: Uint8Array = Buffer.concat(parts.map((p) =>
        typeof p === "number" ? Buffer.from(`/nix/store/${hashes[p % hashes.length]!}-x`)
          : typeof p === "string" ? Buffer.from(hashes[0]!.slice(0, 20)) : Buffer.from(p)))
      const normaliser = new Normaliser(hashes)
      const input = Buffer.from(data)
      const normalised = Buffer.concat([...cutsOf(data, cuts).flatMap((c) => normaliser.push(c)), normaliser.end()])
      expect(normalised.length).toBe(data.length)
      expect(Buffer.compare(input, data)).toBe(0) // the input is never modified
      for (const h of hashes) expect(normalised.includes(h)).toBe(false)
      for (const p of normaliser.positions) expect(Buffer.compare(normalised.subarray(p.offset, p.offset + 32), FILLER)).toBe(0)
      const denormaliser = new Denormaliser(normaliser.hashes, normaliser.positions)
      const restored = Buffer.concat(cutsOf(normalised, [...cuts].reverse()).map((c) => Buffer.from(denormaliser.apply(c))))
      expect(Buffer.compare(restored, data)).toBe(0)
    }), { numRuns: 300 })
  })

  it("makes two builds that differ only in their hashes the same bytes", () => {
    const [a, b, c, d] = ["a", "b", "c", "d"].map((s) => createHash("sha256").update(s).digest().toString("hex").replace(/[eotu]/g, "0").slice(0, 32))
    const text = (self: string, dep: string) => Buffer.from(`#!/nix/store/${dep}-bash/bin/sh\nexec /nix/store/${self}-hello/bin/.hello-wrapped "$@"\n`)
    const norm = (bytes: Uint8Array, hashes: ReadonlyArray<string>) => { const n = new Normaliser(hashes); return Buffer.concat([...n.push(bytes), n.end()]) }
    expect(norm(text(a!, b!), [a!, b!]).equals(norm(text(c!, d!), [c!, d!]))).toBe(true)
  })
})

describe("formats", () => {
  const arbId = fc.uint8Array({ minLength: 32, maxLength: 32 })
  const arbManifest: fc.Arbitrary<Manifest> = fc.record({
    hashes: fc.uniqueArray(arbHash, { maxLength: 3 }),
    lengths: fc.array(fc.integer({ min: 1, max: 100_000 }), { maxLength: 20 }),
    packs: fc.array(fc.uint8Array({ minLength: 8, maxLength: 8 }), { minLength: 1, maxLength: 3 }),
    ids: fc.array(arbId, { minLength: 20, maxLength: 20 }),
    gaps: fc.array(fc.nat({ max: 50 }), { maxLength: 10 })
  }).map(({ hashes, lengths, packs, ids, gaps }) => {
    const narSize = lengths.reduce((a, b) => a + b, 0)
    const positions: Array<{ offset: number; index: number }> = []
    let end = 0
    for (const [i, g] of gaps.entries()) {
      if (hashes.length === 0 || end + g + 32 > narSize) break
      positions.push({ offset: end + g, index: i % hashes.length })
      end += g + 32
    }
    return { narSize, hashes, positions, packs, chunks: lengths.map((length, i) => ({ id: ids[i]!, length, pack: i % packs.length })) }
  })

  it("manifests and path records round-trip", () => {
    fc.assert(fc.property(arbManifest, fc.string(), (m, narInfo) => {
      const decoded = Result.getOrThrow(decodeManifest(encodeManifest(m)))
      expect(decoded).toEqual(m)
      expect(Result.getOrThrow(decodePathRecord(encodePathRecord({ narInfo, manifest: m })))).toEqual({ narInfo, manifest: m })
    }))
  })

  it("pack indexes round-trip", () => {
    const arbIndex = fc.record({
      name: fc.uint8Array({ minLength: 8, maxLength: 8 }),
      version: fc.nat(),
      sizes: fc.array(fc.tuple(arbId, fc.integer({ min: 1, max: 1 << 20 }), fc.boolean(), fc.nat({ max: 10 })), { maxLength: 10 })
    })
    fc.assert(fc.property(arbIndex, ({ name, version, sizes }) => {
      let offset = 0
      const entries = sizes.map(([id, stored, zstd, gap]) => {
        offset += gap
        const e = { id, offset, stored, raw: zstd ? stored * 3 : stored, codec: (zstd ? 1 : 0) as 0 | 1 }
        offset += stored
        return e
      })
      const bytes = encodePackIndex({ name, version, entries })
      expect(bytes[4]).toBe(1) // no deltas: version 1, as before them
      expect(Result.getOrThrow(decodePackIndex(bytes))).toEqual({ name, version, entries })
    }))
  })

  const arbDeltaIndex = fc.record({
    name: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    version: fc.nat(),
    sizes: fc.array(fc.tuple(arbId, fc.integer({ min: 1, max: 1 << 20 }), fc.constantFrom(0, 1, 2), arbId, fc.uint8Array({ minLength: 8, maxLength: 8 })), { minLength: 1, maxLength: 10 })
  }).map(({ name, version, sizes }) => {
    let offset = 0
    const entries = sizes.map(([id, stored, codec, baseId, basePack]): PackEntry => {
      const e: PackEntry = codec === 2
        ? { id, offset, stored, raw: stored * 5, codec: 2, base: { id: Buffer.compare(baseId, id) === 0 ? baseId.map((b) => b ^ 1) : baseId, pack: basePack } }
        : { id, offset, stored, raw: codec === 1 ? stored * 3 : stored, codec: codec as 0 | 1 }
      offset += stored
      return e
    })
    return { name, version, entries }
  })

  it("pack indexes with delta chunks round-trip (version 2), naming each delta's base and its pack", () => {
    fc.assert(fc.property(arbDeltaIndex, (index) => {
      const bytes = encodePackIndex(index)
      expect(bytes[4]).toBe(index.entries.some((e) => e.codec === 2) ? 2 : 1)
      expect(Result.getOrThrow(decodePackIndex(bytes))).toEqual(index)
    }))
    // a version-1 index cannot hold a delta chunk
    const id = new Uint8Array(32).fill(1)
    const v2 = encodePackIndex({ name: new Uint8Array(8), version: 1, entries: [{ id, offset: 0, stored: 10, raw: 20, codec: 2, base: { id: new Uint8Array(32), pack: new Uint8Array(8) } }] })
    const v1 = Uint8Array.from(v2)
    v1[4] = 1
    expect(Result.isFailure(decodePackIndex(v1))).toBe(true)
    // nor is a chunk its own base
    const self = encodePackIndex({ name: new Uint8Array(8), version: 1, entries: [{ id, offset: 0, stored: 10, raw: 20, codec: 2, base: { id, pack: new Uint8Array(8) } }] })
    expect(Result.isFailure(decodePackIndex(self))).toBe(true)
  })

  it("damaged pack indexes with deltas decode to a value or a typed error", () => {
    const damaged = fc.tuple(arbDeltaIndex, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 }), fc.boolean()), { minLength: 1, maxLength: 4 })).map(([index, edits]) => {
      let b = Buffer.from(encodePackIndex(index))
      for (const [at, v, cut] of edits) {
        if (cut) b = b.subarray(0, at % (b.length + 1))
        else if (b.length > 0) b[at % b.length] = v
      }
      return new Uint8Array(b)
    })
    fc.assert(fc.property(damaged, (bytes) => {
      const r = decodePackIndex(bytes)
      expect(Result.isFailure(r) ? r.failure._tag : "ok").toMatch(/^(ok|InvalidChunkFormat)$/)
    }), { numRuns: 300 })
  })

  it("any bytes, and any damage to a valid encoding, decode to a value or a typed error", () => {
    const damaged = fc.tuple(arbManifest, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 }), fc.boolean()), { minLength: 1, maxLength: 4 })).map(([m, edits]) => {
      let b = Buffer.from(encodePathRecord({ narInfo: "StorePath: x\n", manifest: m }))
      for (const [at, v, cut] of edits) {
        if (cut) b = b.subarray(0, at % (b.length + 1))
        else if (b.length > 0) b[at % b.length] = v
      }
      return new Uint8Array(b)
    })
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), damaged), (bytes) => {
      const failures = [decodeManifest(bytes), decodePathRecord(bytes), decodePackIndex(bytes)]
        .map((r: Result.Result<unknown, { readonly _tag: string }>) => Result.isFailure(r) ? r.failure._tag : "ok")
      for (const tag of failures) expect(["ok", "InvalidChunkFormat"]).toContain(tag)
    }), { numRuns: 500 })
  })

  it("refuses counts that cannot fit instead of allocating for them", () => {
    const huge = new Uint8Array([0x42, 0x33, 0x43, 0x4d, 1, 10, 0xff, 0xff, 0xff, 0xff, 0x0f])
    const r = decodeManifest(huge)
    expect(Result.isFailure(r) && r.failure.reason).toMatch(/cannot fit/)
  })

  it("a raw zstd frame decompresses to its bytes", () => {
    for (const n of [0, 1, 1000, 128 * 1024, 128 * 1024 + 1, 400_000]) {
      const data = pseudoRandom(n, n)
      expect(Buffer.compare(zstdDecompressSync(rawZstdFrame(data)), data)).toBe(0)
    }
  })
})

describe("resemblance (super-features)", () => {
  it("any bytes give at most 3 super-features, integers below 2^53 in their own slots, the same every time", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), (bytes) => {
      const sfs = superFeatures(bytes)
      expect(sfs.length === 0 || sfs.length === 3).toBe(true)
      sfs.forEach((sf, k) => {
        expect(Number.isSafeInteger(sf) && sf >= 0).toBe(true)
        expect(superFeatureSlot(sf)).toBe(k)
      })
      expect(superFeatures(Uint8Array.from(bytes))).toEqual(sfs)
    }))
    // too short to sample: none
    expect(superFeatures(new Uint8Array(0))).toEqual([])
    expect(superFeatures(pseudoRandom(3, 64))).toEqual([])
  })

  it("a chunk with a few bytes changed shares a super-feature with the original; unrelated chunks share none", () => {
    let similar = 0
    let unrelated = 0
    for (let seed = 1; seed <= 20; seed++) {
      const original = pseudoRandom(seed, 64 * 1024)
      const edited = Uint8Array.from(original)
      for (let k = 0; k < 3; k++) edited[(seed * 7919 + k * 20011) % edited.length] ^= 0xff
      const a = new Set(superFeatures(original))
      if (superFeatures(edited).some((sf) => a.has(sf))) similar++
      if (superFeatures(pseudoRandom(seed + 1000, 64 * 1024)).some((sf) => a.has(sf))) unrelated++
    }
    expect(similar).toBeGreaterThanOrEqual(18)
    expect(unrelated).toBe(0)
  })

  it("the WebAssembly sampler gives the TypeScript loop's features for any bytes", () => {
    const same = (bytes: Uint8Array) => {
      const a = features(bytes), b = featuresJs(bytes)
      expect(a.samples).toBe(b.samples)
      expect([...a.features]).toEqual([...b.features])
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), (bytes) => same(bytes)))
    // longer than the sampler's window (256 KiB), and runs of one byte (some sample every byte)
    same(pseudoRandom(7, 600 * 1024 + 13))
    for (let b = 0; b < 256; b++) same(new Uint8Array(300 * 1024).fill(b))
  })

  it("the TypeScript SHA-256 (for the workers' super-features) is SHA-256", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      expect(Buffer.from(sha256(bytes)).toString("hex")).toBe(createHash("sha256").update(bytes).digest("hex"))
    }))
  })

  it("a chunk that begins like a zstd dictionary is never a base", () => {
    expect(usableAsBase(pseudoRandom(1, 100))).toBe(true)
    expect(usableAsBase(new Uint8Array([0x37, 0xa4, 0x30, 0xec, 1, 2, 3, 4, 5]))).toBe(false)
    expect(usableAsBase(new Uint8Array(4))).toBe(false)
  })
})
