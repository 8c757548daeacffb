/**
 * Delta chunks in the chunk store: versions of a NAR that differ by scattered edits are stored as
 * zstd deltas against chunks of earlier versions, and read back byte for byte — through the writer's
 * store, a reader with only the blobs (a directory, and over HTTP), and as zstd frames (`b3 serve
 * --compression zstd`). A base outlives the path that brought it while a delta needs it, GC and
 * repack keep it findable, and once nothing needs it, it goes too. After every step the index's
 * invariants hold: every delta chunk's base has a row, is stored whole and is counted as referenced;
 * super-feature rows belong to whole chunks that exist; nothing is a delta against a dead chunk.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Result, Stream } from "effect"
import fc from "fast-check"
import { spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { DatabaseSync } from "node:sqlite"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Hash from "../../src/core/hash.ts"
import type { PathInfo } from "../../src/core/path-info.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import { openerLayer } from "../../src/services/registry.ts"
import { StoreRead, type StoredNar } from "../../src/services/store-read.ts"
import { openChunkedFile, openChunkedHttp, openFileChunkStore } from "../../src/layers/chunked/opener.ts"
import { StoreMaintenance } from "../../src/services/store-maintenance.ts"
import { StoreWrite } from "../../src/services/store-write.ts"
import { looksIncompressible } from "../../src/core/chunks/fastcdc.ts"
import type { ChunkedStore } from "../../src/layers/chunked/chunked-store.ts"
import { checkDeltaIndex as checkIndex } from "../support/chunked-index-check.ts"
import { hex } from "../../src/core/chunks/binary.ts"
import { decodePathRecord } from "../../src/core/chunks/formats.ts"
import { makeFileBlobs } from "../../src/layers/binary-cache/file-blobs.ts"
import { chunkWorkers } from "../../src/layers/chunked/chunk-workers.ts"
import { type FeedMode, feedNar } from "../../src/layers/chunked/feed.ts"
import { makeBaseReader, makePackLocator } from "../../src/layers/chunked/packs.ts"
import { startFileServer } from "../support/file-server.ts"

const storeDir = StorePath.defaultStoreDir
const options = { chunking: { min: 1024, avg: 4096, max: 16384 }, packSize: 64 * 1024 }

const scratchDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-chunked-delta-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))

const pseudoRandom = (seed: number, n: number) => {
  const out = new Uint8Array(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; out[i] = x & 0xff }
  return out
}

/** Text of pseudo-random words from a small vocabulary: compressible, varied, well below the incompressible threshold. */
const pseudoText = (seed: number, n: number) => {
  const vocabulary = ["store", "path", "chunk", "delta", "base", "nix", "build", "output", "hash", "pack", "index", "lib", "bin", "share", "0x", "{", "}", ";", "\n", "return", "const"]
  const bytes = pseudoRandom(seed, n)
  const words: Array<string> = []
  let length = 0
  for (let i = 0; length < n; i++) { const w = vocabulary[bytes[i % n]! % vocabulary.length]! + (bytes[(i * 7) % n]! & 1 ? " " : ""); words.push(w); length += w.length }
  return Buffer.from(words.join("")).subarray(0, n)
}

/** Version `v` of a payload: the base bytes with `edits` bytes changed and a few bytes inserted, all at places that depend on `v`. */
const version = (base: Uint8Array, v: number, edits: number) => {
  const out = Uint8Array.from(base)
  for (let k = 0; k < edits; k++) out[(v * 7919 + k * 104729) % out.length] ^= 0x5a
  const at = (v * 31337) % out.length
  return Buffer.concat([out.subarray(0, at), Buffer.from(`v${v}`), out.subarray(at)])
}

const fakePath = (seed: string, name: string) => StorePath.makeText(name, Hash.hashBytes("sha256", seed), [], storeDir)

/** A NAR whose files embed its own path (normalised out by the store) around the payload. */
const narOf = (self: StorePath.StorePath, payload: Uint8Array) => Result.getOrThrow(Tree.toNar(Tree.directory({
  lib: Tree.regular(Buffer.concat([payload.subarray(0, 5000), Buffer.from(`\0RPATH=${StorePath.print(self, storeDir)}/lib\0`), payload.subarray(5000)])),
  "x.pc": Tree.regular(Buffer.from(`prefix=${StorePath.print(self, storeDir)}\n`))
})))

const infoFor = (path: StorePath.StorePath, nar: Uint8Array): PathInfo =>
  ({ path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: [] })

const collect = (s: Stream.Stream<Uint8Array, unknown>) => Effect.map(Stream.runCollect(s), (c) => Buffer.concat([...c]))
/** What `StoredNar.feed` gives, each piece copied before the next (the store reuses its buffers). */
const fed = (feed: StoredNar["feed"]) => Effect.gen(function*() {
  const pieces: Array<Buffer> = []
  yield* feed!(async (piece) => { pieces.push(Buffer.from(piece)); return undefined })
  return Buffer.concat(pieces)
})
const unzstd = (bytes: Uint8Array) => spawnSync("zstd", ["-dcq"], { input: bytes, maxBuffer: 1 << 30 }).stdout

const add = (store: ChunkedStore, name: string, payload: Uint8Array) => Effect.gen(function*() {
  const self = fakePath(name, name)
  const nar = narOf(self, payload)
  yield* store.write!.addToStore(infoFor(self, nar), Stream.make(nar.subarray(0, 3000), nar.subarray(3000)))
  return { path: self, nar }
})

describe("chunk store: delta chunks", () => {
  it.effect("versions with scattered edits are stored as deltas and read back byte for byte (writer, blobs alone, HTTP, zstd frames)", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const root = join(dir, "store")
    const store = yield* openFileChunkStore(root, options)
    const cases = fc.sample(fc.record({ seed: fc.integer({ min: 1 }), size: fc.integer({ min: 40_000, max: 150_000 }), edits: fc.integer({ min: 1, max: 12 }), versions: fc.integer({ min: 2, max: 4 }) }), 6)
    const made: Array<{ path: StorePath.StorePath; nar: Uint8Array }> = []
    let logical = 0
    for (const [i, c] of cases.entries()) {
      // compressible text: with delta-incompressible off (the default), chunks that look incompressible are never deltas
      const base = pseudoText(c.seed, c.size)
      for (let v = 0; v < c.versions; v++) {
        const p = yield* add(store, `case${i}-v${v}`, version(base, v, c.edits))
        made.push(p)
        logical += p.nar.length
      }
    }
    checkIndex(root)
    const stats = yield* store.maintenance!.stats!()
    expect(stats["deltaChunks"]).toBeGreaterThan(0)
    // a few edits: what deltas save is most of each such chunk (more than zstd alone would)
    expect(stats["deltaBytes"]).toBeLessThan(stats["deltaRawBytes"]! / 4)
    expect(stats["packBytes"]).toBeLessThan(logical * 0.6)

    const reader = yield* openFileChunkStore(root, { readOnly: true })
    const server = yield* Effect.acquireRelease(Effect.promise(() => startFileServer(root)), (s) => Effect.sync(() => s.close()))
    const overHttp = Context.get(yield* Layer.build(openerLayer<StoreRead>(openChunkedHttp, `chunked+${server.url}`)), StoreRead)
    for (const p of made) {
      expect(Buffer.compare(yield* collect(store.read.narFromPath(p.path)), p.nar)).toBe(0)
      expect(Buffer.compare(yield* collect(reader.read.narFromPath(p.path)), p.nar)).toBe(0)
      expect(Buffer.compare(yield* collect(overHttp.narFromPath(p.path)), p.nar)).toBe(0)
      const stored = yield* store.read.storedNar!(p.path, "zstd")
      expect(Buffer.compare(unzstd(yield* collect(stored.bytes)), p.nar)).toBe(0)
      // what b3 serve sends: fed into reused buffers, plain and as zstd frames, from the writer's store and a reader's
      for (const s of [store, reader]) {
        expect(Buffer.compare(yield* fed((yield* s.read.storedNar!(p.path, "none")).feed), p.nar)).toBe(0)
        expect(Buffer.compare(unzstd(yield* fed((yield* s.read.storedNar!(p.path, "zstd")).feed)), p.nar)).toBe(0)
      }
    }
    expect((yield* store.maintenance!.verify()).problems).toEqual([])
  })), 120_000)

  it.effect("a base outlives the path that brought it while a delta needs it; GC and repack keep it readable; then it goes", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const root = join(dir, "store")
    // repack every pack that lost anything
    const store = yield* openFileChunkStore(root, { ...options, repackThreshold: 1 })
    const m = store.maintenance!
    const base = pseudoText(7, 120_000)
    // v1 has a tail of its own (random: stored raw) besides the chunks v2 is a delta against
    const v1Payload = Buffer.concat([version(base, 1, 6), pseudoRandom(99, 40_000)])
    const v1 = yield* add(store, "v1", v1Payload)
    const v2 = yield* add(store, "v2", version(base, 2, 6))
    checkIndex(root)
    expect((yield* m.stats!())["deltaChunks"]).toBeGreaterThan(0)

    // the path that introduced the bases goes; its chunks that no delta needs go with it
    yield* m.deletePaths!([v1.path])
    checkIndex(root)
    // a new version while v1's chunks are dead (not yet collected): no delta against a dead chunk
    const v3 = yield* add(store, "v3", version(base, 3, 6))
    checkIndex(root)
    const gc = yield* m.collectGarbage()
    expect(gc.bytesFreed).toBeGreaterThan(30_000)
    checkIndex(root)
    const reader = yield* openFileChunkStore(root, { readOnly: true })
    for (const p of [v2, v3]) {
      expect(Buffer.compare(yield* collect(store.read.narFromPath(p.path)), p.nar)).toBe(0)
      expect(Buffer.compare(yield* collect(reader.read.narFromPath(p.path)), p.nar)).toBe(0)
      expect(Buffer.compare(yield* fed((yield* reader.read.storedNar!(p.path, "none")).feed), p.nar)).toBe(0)
      expect(Buffer.compare(unzstd(yield* fed((yield* reader.read.storedNar!(p.path, "zstd")).feed)), p.nar)).toBe(0)
    }
    expect((yield* m.stats!())["deltaChunks"]).toBeGreaterThan(0)
    // a repack with nothing to do, then the same reads again
    yield* m.repack!()
    expect((yield* m.verify()).problems).toEqual([])

    // v1 again: reads back, whatever it is stored as now
    const again = yield* add(store, "v1", v1Payload)
    expect(Buffer.compare(yield* collect(store.read.narFromPath(again.path)), v1.nar)).toBe(0)
    checkIndex(root)

    // nothing left: every chunk, base or delta, and every pack goes (bases at the GC after their deltas')
    yield* m.deletePaths!([v1.path, v2.path, v3.path])
    yield* m.collectGarbage()
    yield* m.collectGarbage()
    const after = yield* m.stats!()
    expect(after["chunks"]).toBe(0)
    expect(after["packs"]).toBe(0)
    checkIndex(root)
  })), 120_000)

  it.effect("serving feeds: a pack rewritten after the chunks were located is found again; a consumer that stops gives its buffers back", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const root = join(dir, "store")
    const store = yield* openFileChunkStore(root, { ...options, repackThreshold: 1 })
    const base = pseudoText(3, 120_000)
    const v1 = yield* add(store, "v1", Buffer.concat([version(base, 1, 6), pseudoRandom(98, 40_000)]))
    const v2 = yield* add(store, "v2", version(base, 2, 6))
    const uri = `chunked+file://${root}`
    const blobs = makeFileBlobs(uri, root)
    const locator = makePackLocator(uri, blobs)
    const record = decodePathRecord(readFileSync(join(root, "paths", `${v2.path.hashPart}.b3p`)))
    const manifest = Result.getOrThrow(record).manifest
    const stale = yield* locator.places(manifest)
    // v1 goes and the packs it shared with v2 are rewritten: the places located above are gone
    yield* store.maintenance!.deletePaths!([v1.path])
    const gc = yield* store.maintenance!.collectGarbage()
    expect(gc.repack!.packsRewritten).toBeGreaterThan(0)
    const feedOptions = {
      uri, blobs, bases: makeBaseReader(uri, blobs, locator), workers: chunkWorkers(uri),
      relocate: () => { for (const p of manifest.packs) locator.forget(hex(p)); return locator.places(manifest) }
    }
    const now = yield* feedOptions.relocate()
    expect(now.some((p, i) => p.version !== stale[i]!.version)).toBe(true)
    const feedAll = (mode: FeedMode) => Effect.gen(function*() {
      const pieces: Array<Buffer> = []
      yield* feedNar(feedOptions, manifest, stale, mode, async (piece) => { pieces.push(Buffer.from(piece)); return undefined })
      return Buffer.concat(pieces)
    })
    expect(Buffer.compare(yield* feedAll("plain"), v2.nar)).toBe(0)
    expect(Buffer.compare(unzstd(yield* feedAll("zstd")), v2.nar)).toBe(0)

    // a NAR of several runs, whose consumer stops after the first piece, many times over: every
    // time the feed ends cleanly, and the buffers it held are free again (else this would hang)
    const big = yield* add(store, "big", pseudoRandom(77, 12 << 20))
    for (let i = 0; i < 30; i++) {
      let pieces = 0
      yield* (yield* store.read.storedNar!(big.path, i % 2 === 0 ? "none" : "zstd")).feed!(async () => { pieces++; return "stop" })
      expect(pieces).toBe(1)
    }
    expect(Buffer.compare(yield* fed((yield* store.read.storedNar!(big.path, "none")).feed), big.nar)).toBe(0)
  })), 120_000)

  it.effect("a store made before delta chunks (index without their column and table, version-1 pack indexes) reads, and takes deltas", () => Effect.gen(function*() {
    const dir = yield* scratchDir
    const root = join(dir, "old")
    const base = pseudoText(5, 100_000)
    const first = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* openFileChunkStore(root, { ...options, delta: false })
      return [yield* add(store, "o0", version(base, 0, 4)), yield* add(store, "o1", version(base, 1, 4))]
    }))
    // what an index made by the code before delta chunks looks like
    const db = new DatabaseSync(join(root, "index", "chunks.sqlite"))
    db.exec("drop table features; alter table chunks drop column base")
    db.close()
    for (const f of readdirSync(join(root, "packs")).filter((f) => f.endsWith(".idx"))) expect(readFileSync(join(root, "packs", f))[4]).toBe(1)
    yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* openFileChunkStore(root, options)
      for (const p of first) expect(Buffer.compare(yield* collect(store.read.narFromPath(p.path)), p.nar)).toBe(0)
      // chunks stored before have no super-features: a new version finds bases among the new ones
      const later = [yield* add(store, "o2", version(base, 2, 4)), yield* add(store, "o3", version(base, 3, 4))]
      expect((yield* store.maintenance!.stats!())["deltaChunks"]).toBeGreaterThan(0)
      for (const p of [...first, ...later]) expect(Buffer.compare(yield* collect(store.read.narFromPath(p.path)), p.nar)).toBe(0)
      checkIndex(root)
    }))
  }).pipe(Effect.scoped), 120_000)

  it.effect("delta=0 stores every chunk whole, and reads a store that has deltas", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const base = pseudoText(11, 100_000)
    const plain = yield* openFileChunkStore(join(dir, "plain"), { ...options, delta: false })
    for (let v = 0; v < 3; v++) yield* add(plain, `p${v}`, version(base, v, 4))
    expect((yield* plain.maintenance!.stats!())["deltaChunks"]).toBe(0)

    const root = join(dir, "with")
    const made = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* openFileChunkStore(root, options)
      const out = []
      for (let v = 0; v < 3; v++) out.push(yield* add(store, `p${v}`, version(base, v, 4)))
      expect((yield* store.maintenance!.stats!())["deltaChunks"]).toBeGreaterThan(0)
      return out
    }))
    const off = yield* openFileChunkStore(root, { ...options, delta: false })
    for (const p of made) expect(Buffer.compare(yield* collect(off.read.narFromPath(p.path)), p.nar)).toBe(0)
  })), 120_000)

  it.effect("delta-incompressible=0 (the default) stores incompressible versions whole (compressible ones still as deltas); =1 stores them as deltas", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const random = pseudoRandom(13, 100_000)
    const text = pseudoText(17, 100_000)
    expect(looksIncompressible(random)).toBe(true)
    expect(looksIncompressible(text)).toBe(false)
    const open = (name: string, param: string) => Effect.gen(function*() {
      const root = join(dir, name)
      const context = yield* Layer.build(openerLayer<StoreRead | StoreWrite | StoreMaintenance>(openChunkedFile, `chunked+file://${root}?chunk-size=4/8/32&pack-size=0.0625${param}`))
      const read = Context.get(context, StoreRead)
      const write = Context.get(context, StoreWrite)
      const maintenance = Context.get(context, StoreMaintenance)
      const put = (label: string, payload: Uint8Array) => Effect.gen(function*() {
        const self = fakePath(`${name}-${label}`, label)
        const nar = narOf(self, payload)
        yield* write.addToStore(infoFor(self, nar), Stream.make(nar.subarray(0, 3000), nar.subarray(3000)))
        return { path: self, nar }
      })
      const deltaChunks = Effect.map(maintenance.stats!(), (s) => s["deltaChunks"]!)
      /** Chunks of 4 KiB or more (those that can look incompressible; all but a NAR's last) that are deltas, and that have super-features (can be bases). */
      const large = () => {
        const db = new DatabaseSync(join(root, "index", "chunks.sqlite"), { readOnly: true })
        try {
          const n = (sql: string) => Number((db.prepare(sql).get() as { n: number }).n)
          return {
            deltas: n("select count(*) as n from chunks where codec = 2 and raw >= 4096"),
            withFeatures: n("select count(distinct f.id) as n from features f join chunks c on c.id = f.id where c.raw >= 4096")
          }
        } finally { db.close() }
      }
      const readsBack = (made: ReadonlyArray<{ path: StorePath.StorePath; nar: Uint8Array }>) => Effect.gen(function*() {
        for (const p of made) expect(Buffer.compare(yield* collect(read.narFromPath(p.path)), p.nar)).toBe(0)
        expect((yield* maintenance.verify()).problems).toEqual([])
        checkIndex(root)
      })
      return { put, deltaChunks, large, readsBack }
    })

    for (const [name, param] of [["skip", "&delta-incompressible=0"], ["default", ""]] as const) {
      const skip = yield* open(name, param)
      const skipped = []
      for (let v = 0; v < 3; v++) skipped.push(yield* skip.put(`r${v}`, version(random, v, 4)))
      // neither deltas nor bases (a NAR's last chunk, shorter than 4 KiB, never looks incompressible)
      expect(skip.large()).toEqual({ deltas: 0, withFeatures: 0 })
      yield* skip.readsBack(skipped)
      // compressible versions in the same store are still deltas
      for (let v = 0; v < 3; v++) skipped.push(yield* skip.put(`t${v}`, version(text, v, 4)))
      expect(yield* skip.deltaChunks).toBeGreaterThan(0)
      yield* skip.readsBack(skipped)
    }

    const store = yield* open("on", "&delta-incompressible=1")
    const made = []
    for (let v = 0; v < 3; v++) made.push(yield* store.put(`r${v}`, version(random, v, 4)))
    expect(store.large().deltas).toBeGreaterThan(4)
    expect(store.large().withFeatures).toBeGreaterThan(4)
    yield* store.readsBack(made)

    const bad = yield* Effect.result(Layer.build(openerLayer<StoreRead>(openChunkedFile, `chunked+file://${join(dir, "bad")}?delta-incompressible=2`)))
    expect(Result.isFailure(bad) && bad.failure._tag).toBe("BadStoreUri")
  })), 120_000)
})
