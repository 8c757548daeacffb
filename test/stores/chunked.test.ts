/**
 * The chunk store (chunked+file, SQLite index): the store suite, byte-identical round trips of the
 * NAR test trees and of random NARs (with embedded store paths), dedup across a "rebuild", reads
 * with only the blobs (no index), deletion, GC and repack, and zstd frames served as stored.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Result, Stream } from "effect"
import fc from "fast-check"
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { spawnSync } from "node:child_process"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import type { PathInfo } from "../../src/core/path-info.ts"
import * as Tree from "../../src/nar/tree.ts"
import * as ChunkStore from "../../src/layers/chunked/opener.ts"
import { openFileChunkStore } from "../../src/layers/chunked/opener.ts"
import { makeKitchenSink } from "../nar/support.ts"
import type { StoredNar } from "../../src/services/store-read.ts"
import { storeConformance, uriStore } from "./store-suite.ts"

const scratchDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-chunked-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))

/** Small chunks and packs, so that small test NARs still make several of each. */
const small = { chunking: { min: 256, avg: 1024, max: 4096 }, packSize: 512 * 1024 }

storeConformance("chunked+file (SQLite index, small chunks)", () => Layer.unwrap(Effect.map(scratchDir, (dir) => ChunkStore.layer(dir, small))), { checksReferences: false })
storeConformance("chunked+file (URI, default sizes)", () => uriStore(Effect.map(scratchDir, (dir) => `chunked+file://${dir}`)), { checksReferences: false })

/** What `StoredNar.feed` gives, each piece copied before the next (the store reuses its buffers). */
const fed = (feed: StoredNar["feed"]) => Effect.gen(function*() {
  const pieces: Array<Buffer> = []
  yield* feed!(async (piece) => { pieces.push(Buffer.from(piece)); return undefined })
  return Buffer.concat(pieces)
})

/** zstd -d (Node's zstd decompresses only the first of several frames; Nix and zstd read them all). */
const unzstd = (bytes: Uint8Array) => spawnSync("zstd", ["-dcq"], { input: bytes, maxBuffer: 1 << 30 }).stdout

const collect = (s: Stream.Stream<Uint8Array, unknown>) => Effect.map(Stream.runCollect(s), (c) => Buffer.concat([...c]))

const storeDir = StorePath.defaultStoreDir
const fakePath = (seed: string, name: string) => StorePath.makeText(name, Hash.hashBytes("sha256", seed), [], storeDir)

/** A NAR of a tree whose files mention `self` and `refs` (as wrappers, RPATHs and .pc files do). */
const outputNar = (self: StorePath.StorePath, refs: ReadonlyArray<StorePath.StorePath>, payload: Uint8Array, version: string) => {
  const mention = (p: StorePath.StorePath) => StorePath.print(p, storeDir)
  const tree = Tree.directory({
    bin: Tree.directory({
      tool: Tree.regular(Buffer.concat([Buffer.from(`#!${refs.map(mention)[0] ?? "/bin"}/bin/sh\nexec ${mention(self)}/libexec/tool "$@"\n`)]), true)
    }),
    lib: Tree.directory({
      "libx.so": Tree.regular(Buffer.concat([payload.subarray(0, payload.length >> 1), Buffer.from(`\0RPATH=${[self, ...refs].map((p) => mention(p) + "/lib").join(":")}\0`), payload.subarray(payload.length >> 1)])),
      pkgconfig: Tree.directory({ "x.pc": Tree.regular(Buffer.from(`prefix=${mention(self)}\nversion=${version}\nRequires: ${refs.map(mention).join(" ")}\n`)) })
    })
  })
  return Result.getOrThrow(Tree.toNar(tree))
}

const infoFor = (path: StorePath.StorePath, nar: Uint8Array, refs: ReadonlyArray<StorePath.StorePath>): PathInfo =>
  ({ path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [...refs, path].sort(StorePath.compare), signatures: [] })

const pseudoRandom = (seed: number, n: number) => {
  const out = new Uint8Array(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; out[i] = x & 0xff }
  return out
}

const dirSize = (dir: string): number => readdirSync(dir, { withFileTypes: true, recursive: true })
  .filter((e) => e.isFile()).reduce((n, e) => n + statSync(join(e.parentPath, e.name)).size, 0)

describe("chunk store", () => {
  it.effect("round-trips the kitchen-sink tree and random NARs with embedded store paths byte for byte", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const store = yield* openFileChunkStore(join(dir, "store"), small)
    const sink = mkdtempSync(join(tmpdir(), "b3-sink-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(sink, { recursive: true, force: true })))
    const tree = makeKitchenSink(join(sink, "tree"))
    const info = yield* store.write!.addPath(tree)
    const back = yield* collect(store.read.narFromPath(info.path))
    expect(Hash.equals(Hash.hashBytes("sha256", back), info.narHash)).toBe(true)
    // text that compresses, no store paths in it: its zstd frames go out as stored
    const words = Array.from({ length: 40_000 }, (_, k) => ["store", "path", "chunk", "frame", "delta"][(k * 7) % 5] + String(k % 97)).join(" ")
    const textPath = fakePath("text", "doc")
    const textNar = Result.getOrThrow(Tree.toNar(Tree.directory({ "doc.txt": Tree.regular(words) })))
    yield* store.write!.addToStore(infoFor(textPath, textNar, []), Stream.make(textNar))
    expect(Buffer.compare(unzstd(yield* fed((yield* store.read.storedNar!(textPath, "zstd")).feed)), textNar)).toBe(0)
    expect(Buffer.compare(yield* fed((yield* store.read.storedNar!(textPath, "none")).feed), textNar)).toBe(0)

    const cases = fc.sample(fc.record({ seed: fc.integer(), size: fc.integer({ min: 0, max: 60_000 }), refs: fc.integer({ min: 0, max: 4 }) }), 25)
    for (const [i, c] of cases.entries()) {
      const refs = Array.from({ length: c.refs }, (_, k) => fakePath(`ref-${i}-${k}`, `dep${k}`))
      const self = fakePath(`self-${i}`, "out")
      const nar = outputNar(self, refs, pseudoRandom(c.seed, c.size), String(i))
      const pi = infoFor(self, nar, refs)
      yield* store.write!.addToStore(pi, Stream.make(nar.subarray(0, 1000), nar.subarray(1000)))
      const got = yield* collect(store.read.narFromPath(self))
      expect(Buffer.compare(got, nar)).toBe(0)
      // the zstd frames served as they are decompress to the same NAR
      const stored = yield* store.read.storedNar!(self, "zstd")
      expect(stored.compression).toBe("zstd")
      expect(Buffer.compare(unzstd(yield* collect(stored.bytes)), nar)).toBe(0)
      // and what b3 serve sends, fed into buffers the store reuses
      expect(Buffer.compare(unzstd(yield* fed(stored.feed)), nar)).toBe(0)
      expect(Buffer.compare(yield* fed((yield* store.read.storedNar!(self, "none")).feed), nar)).toBe(0)
    }
  })))

  it.effect("NARs of several batches full of store paths, into two stores at once in one process, are taken whole (NAR hash) and read back byte for byte", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const stores = [yield* openFileChunkStore(join(dir, "a"), {}), yield* openFileChunkStore(join(dir, "b"), {})]
    // ~6 MiB each (three batches and more): random bytes with the path's own and a reference's hash every ~20 KiB
    const nars = [0, 1].map((k) => {
      const self = fakePath(`big-self-${k}`, "out")
      const ref = fakePath(`big-ref-${k}`, "dep")
      const parts: Array<Uint8Array> = []
      for (let i = 0; i < 300; i++) {
        parts.push(pseudoRandom(k * 1000 + i + 1, 20_000 + ((i * 7919) % 997)))
        parts.push(Buffer.from(StorePath.print(i % 3 === 0 ? ref : self, storeDir)))
      }
      const nar = outputNar(self, [ref], Buffer.concat(parts), String(k))
      return { self, nar, info: infoFor(self, nar, [ref]) }
    })
    const pieces = (nar: Uint8Array) => Stream.fromIterable(Array.from({ length: Math.ceil(nar.length / 100_003) }, (_, i) => nar.subarray(i * 100_003, (i + 1) * 100_003)))
    yield* Effect.forEach([0, 1], (k) => stores[k]!.write!.addToStore(nars[k]!.info, pieces(nars[k]!.nar)), { concurrency: 2 })
    for (const k of [0, 1]) expect(Buffer.compare(yield* collect(stores[k]!.read.narFromPath(nars[k]!.self)), nars[k]!.nar)).toBe(0)
    // and a wrong NAR hash is still refused
    const other = nars[1]!
    const wrong: PathInfo = { ...nars[0]!.info, path: fakePath("big-wrong", "out"), narHash: other.info.narHash }
    expect((yield* Effect.flip(stores[0]!.write!.addToStore(wrong, Stream.make(nars[0]!.nar))))._tag).toBe("HashMismatch")
    expect(yield* stores[0]!.read.isValidPath(wrong.path)).toBe(false)
  })))

  it.effect("a rebuild that only changes store paths stores almost nothing new; a reader without the index reads it", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const root = join(dir, "store")
    const store = yield* openFileChunkStore(root, { chunking: { min: 2048, avg: 8192, max: 32768 }, packSize: 1 << 20 })
    const payload = pseudoRandom(42, 400_000)
    const generation = (g: number) => Effect.gen(function*() {
      const dep = fakePath(`dep-${g}`, "dep")
      const out = fakePath(`out-${g}`, "out")
      for (const [self, refs] of [[dep, []], [out, [dep]]] as const) {
        const nar = outputNar(self, refs, payload, "1.0")
        yield* store.write!.addToStore(infoFor(self, nar, refs), Stream.make(nar))
      }
      return out
    })
    yield* generation(1)
    const first = dirSize(join(root, "packs"))
    const out2 = yield* generation(2)
    const second = dirSize(join(root, "packs")) - first
    expect(second).toBeLessThan(first * 0.05)
    // a second store object over the same directory, without an index (as a reader over HTTP)
    const reader = yield* openFileChunkStore(root, { readOnly: true })
    const info = yield* reader.read.queryPathInfo(out2)
    const nar = yield* collect(reader.read.narFromPath(out2))
    expect(Hash.equals(Hash.hashBytes("sha256", nar), info.narHash)).toBe(true)
    expect(reader.write).toBeUndefined()
  })))

  it.effect("deleting paths frees space at GC; live paths read back unchanged; a dry run says what a GC would free", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const root = join(dir, "store")
    const store = yield* openFileChunkStore(root, { chunking: { min: 2048, avg: 8192, max: 32768 }, packSize: 256 * 1024 })
    const paths: Array<{ path: StorePath.StorePath; nar: Uint8Array }> = []
    for (let i = 0; i < 10; i++) {
      const self = fakePath(`p${i}`, `p${i}`)
      const nar = outputNar(self, [], pseudoRandom(i + 1, 300_000), String(i))
      yield* store.write!.addToStore(infoFor(self, nar, []), Stream.make(nar))
      paths.push({ path: self, nar })
    }
    const m = store.maintenance!
    const before = yield* m.stats!()
    expect(before["paths"]).toBe(10)
    expect(before["liveFraction"]).toBeGreaterThan(0.99)
    const deleted = yield* m.deletePaths!([paths[3]!.path, paths[7]!.path])
    expect(deleted.length).toBe(2)
    expect(yield* store.read.isValidPath(paths[3]!.path)).toBe(false)
    const dry = yield* m.collectGarbage({ dryRun: true })
    expect(dry.bytesFreed).toBeGreaterThan(400_000)
    const gc = yield* m.collectGarbage()
    expect(gc.bytesFreed).toBe(dry.bytesFreed)
    const after = yield* m.stats!()
    expect(after["paths"]).toBe(8)
    expect(after["packBytes"]).toBe(before["packBytes"]! - gc.bytesFreed)
    for (const [i, p] of paths.entries()) {
      if (i === 3 || i === 7) continue
      expect(Buffer.compare(yield* collect(store.read.narFromPath(p.path)), p.nar)).toBe(0)
    }
    // nothing left to do
    expect((yield* m.collectGarbage()).bytesFreed).toBe(0)
    // a deleted path can be added again
    const again = paths[3]!
    yield* store.write!.addToStore(infoFor(again.path, again.nar, []), Stream.make(again.nar))
    expect(Buffer.compare(yield* collect(store.read.narFromPath(again.path)), again.nar)).toBe(0)
    const verify = yield* m.verify()
    expect(verify.problems).toEqual([])
    expect(verify.checked).toBe(9)
  })))

  it.effect("refuses to delete a path that another refers to, and indexes referrers", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const store = yield* openFileChunkStore(join(dir, "store"), small)
    const a = yield* store.write!.addText("a", "base")
    const b = yield* store.write!.addText("b", `uses ${StorePath.print(a.path, storeDir)}`, [a.path])
    expect((yield* store.read.queryReferrers(a.path)).map(StorePath.baseName)).toEqual([StorePath.baseName(b.path)])
    const error = yield* Effect.flip(store.maintenance!.deletePaths!([a.path]))
    expect(error.message).toMatch(/still referenced/)
    expect(yield* store.maintenance!.deletePaths!([a.path, b.path])).toHaveLength(2)
    expect(Option.isNone(yield* store.read.queryPathFromHashPart(a.path.hashPart))).toBe(true)
  })))
})
