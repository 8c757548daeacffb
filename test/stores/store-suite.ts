/**
 * The StoreRead/StoreWrite conformance suite, written once and run against every layer.
 * `layer` gives a fresh, empty store for each test (its resources end with the test).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Result, type Scope, Stream } from "effect"
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as ContentAddress from "../../src/core/content-address.ts"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { computeClosure } from "../../src/services/closure.ts"
import type { PathInfo } from "../../src/core/path-info.ts"
import { StoreRead, type StoreReadApi } from "../../src/services/store-read.ts"
import { StoreWrite, type StoreWriteApi } from "../../src/services/store-write.ts"
import { writableStoreLayer } from "../../src/services/registry.ts"
import { registryLayer } from "../../src/compose/registry.ts"
import * as MemoryStore from "../../src/layers/memory.ts"

export interface OpenedTestStore {
  readonly read: StoreReadApi
  readonly write: StoreWriteApi
}

export interface ConformanceOptions {
  /** Whether the store refuses a path whose references are not valid (local stores do; caches do not). */
  readonly checksReferences: boolean
  /**
   * Run on the live clock, not it.effect's test clock: for stores that wait on real time (e.g. a
   * PostgreSQL index retries a transaction aborted as a deadlock after a pause).
   */
  readonly live?: boolean
}

const collect = (stream: Stream.Stream<Uint8Array, unknown>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => Buffer.concat([...chunks]))

const scratchTree = () => {
  const dir = mkdtempSync(join(tmpdir(), "b3-conf-"))
  const tree = join(dir, "tree")
  mkdirSync(join(tree, "sub/deeper"), { recursive: true })
  writeFileSync(join(tree, "hello.txt"), "hello\n")
  writeFileSync(join(tree, "sub/run.sh"), "#!/bin/sh\necho hi\n")
  chmodSync(join(tree, "sub/run.sh"), 0o755)
  writeFileSync(join(tree, "sub/deeper/empty"), "")
  symlinkSync("../hello.txt", join(tree, "sub/link"))
  mkdirSync(join(tree, "emptydir"))
  return { dir, tree, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A reference NAR and info, made with the in-memory store. */
const sampleText = (name: string, text: string, references: ReadonlyArray<StorePath.StorePath> = []) => Effect.gen(function*() {
  // The references need not be valid in this scratch store: it only serialises the text.
  const mem = MemoryStore.make({ checkReferences: false })
  const info = yield* mem.write.addText(name, text, references)
  const nar = yield* collect(mem.read.narFromPath(info.path))
  return { info, nar }
})

/**
 * The store a URI names, through the built-in registry, as the suite's layer: `uri` makes the URI
 * (e.g. of a fresh temporary directory) in the layer's scope.
 */
export const uriStore = (uri: Effect.Effect<string, unknown, Scope.Scope>): Layer.Layer<StoreRead | StoreWrite, unknown> =>
  Layer.unwrap(Effect.map(uri, (u) => writableStoreLayer(u).pipe(Layer.provide(registryLayer))))

export const storeConformance = (
  name: string,
  layer: () => Layer.Layer<StoreRead | StoreWrite, unknown>,
  options: ConformanceOptions
) => describe(`StoreRead/StoreWrite conformance: ${name}`, () => {
  const withStore = <A, E>(f: (s: OpenedTestStore) => Effect.Effect<A, E, Scope.Scope | StoreRead | StoreWrite>) =>
    Effect.scoped(Effect.gen(function*() {
      return yield* f({ read: yield* StoreRead, write: yield* StoreWrite })
    })).pipe(Effect.provide(layer()))
  const test = options.live ? it.live : it.effect

  test("addText gives Nix's text path and reads back byte for byte", () => withStore(({ read, write }) => Effect.gen(function*() {
    const info = yield* write.addText("greeting.txt", "hello world\n")
    const expected = StorePath.makeText("greeting.txt", Hash.hashBytes("sha256", "hello world\n"), [], read.storeDir)
    expect(StorePath.baseName(info.path)).toBe(StorePath.baseName(expected))
    expect(yield* read.isValidPath(info.path)).toBe(true)
    const stored = yield* read.queryPathInfo(info.path)
    expect(Hash.equals(stored.narHash, info.narHash)).toBe(true)
    expect(stored.narSize).toBe(info.narSize)
    expect(stored.ca && ContentAddress.print(stored.ca)).toBe(`text:${Hash.print(Hash.hashBytes("sha256", "hello world\n"), "base32")}`)
    const nar = yield* collect(read.narFromPath(info.path))
    expect(nar.length).toBe(info.narSize)
    expect(Hash.equals(Hash.hashBytes("sha256", nar), info.narHash)).toBe(true)
    const byHash = yield* read.queryPathFromHashPart(info.path.hashPart)
    expect(Option.map(byHash, StorePath.baseName)).toEqual(Option.some(StorePath.baseName(info.path)))
    expect(yield* read.queryPathFromHashPart("0".repeat(32))).toEqual(Option.none())
    // adding again is a no-op
    const again = yield* write.addText("greeting.txt", "hello world\n")
    expect(StorePath.equals(again.path, info.path)).toBe(true)
  })))

  test("addPath adds a tree (recursive) and a file (flat, any algorithm) as content-addressed paths", () => withStore(({ read, write }) => Effect.gen(function*() {
    const { tree, cleanup } = scratchTree()
    yield* Effect.addFinalizer(() => Effect.sync(cleanup))
    const info = yield* write.addPath(tree)
    expect(info.path.name).toBe("tree")
    expect(StorePath.baseName(info.path)).toBe(StorePath.baseName(StorePath.makeFixedOutput("recursive", info.narHash, "tree", { storeDir: read.storeDir })))
    const nar = yield* collect(read.narFromPath(info.path))
    expect(Hash.equals(Hash.hashBytes("sha256", nar), info.narHash)).toBe(true)
    const flat = yield* write.addPath(join(tree, "hello.txt"), { method: "flat", algorithm: "sha1", name: "hello" })
    expect(StorePath.baseName(flat.path)).toBe(StorePath.baseName(
      StorePath.makeFixedOutput("flat", Hash.hashBytes("sha1", "hello\n"), "hello", { storeDir: read.storeDir })))
    expect(flat.ca && ContentAddress.print(flat.ca)).toBe(`fixed:${Hash.print(Hash.hashBytes("sha1", "hello\n"), "base32")}`)
  })))

  test("addToStore rejects a NAR whose hash or size does not match, and keeps nothing", () => withStore(({ read, write }) => Effect.gen(function*() {
    const { info, nar } = yield* sampleText("sample", "some contents")
    const wrongHash: PathInfo = { ...info, narHash: Hash.hashBytes("sha256", "other") }
    const e1 = yield* Effect.flip(write.addToStore(wrongHash, Stream.make(nar)))
    expect(e1._tag).toBe("HashMismatch")
    const shorter: PathInfo = { ...info, narSize: info.narSize - 8 }
    expect((yield* Effect.flip(write.addToStore(shorter, Stream.make(nar))))._tag).toBe("HashMismatch")
    const longer: PathInfo = { ...info, narSize: info.narSize + 8 }
    expect((yield* Effect.flip(write.addToStore(longer, Stream.make(nar))))._tag).toBe("HashMismatch")
    expect(yield* read.isValidPath(info.path)).toBe(false)
    expect(yield* read.queryValidPaths([info.path])).toEqual([])
    // and the right one is then accepted
    yield* write.addToStore(info, Stream.make(nar.subarray(0, 10), nar.subarray(10)))
    expect(yield* read.isValidPath(info.path)).toBe(true)
  })))

  test("addToStore rejects a malformed NAR even when its hash and size are declared for it", () => withStore(({ read, write }) => Effect.gen(function*() {
    const { info, nar } = yield* sampleText("sample", "some contents")
    const bad = Buffer.from(nar)
    bad[20] = bad[20]! ^ 0x01 // inside the "nix-archive-1" magic / structure
    const info2: PathInfo = { ...info, narHash: Hash.hashBytes("sha256", bad), narSize: bad.length }
    const error = yield* Effect.flip(write.addToStore(info2, Stream.make(bad)))
    expect(error._tag).toBe("BadNar")
    expect(yield* read.isValidPath(info.path)).toBe(false)
  })))

  test("a source stream that fails midway leaves nothing behind", () => withStore(({ read, write }) => Effect.gen(function*() {
    const { info, nar } = yield* sampleText("sample", "x".repeat(5000))
    const failing = Stream.concat(Stream.make(nar.subarray(0, 100)), Stream.fail("connection reset" as const))
    const exit = yield* Effect.exit(write.addToStore(info, failing))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(yield* read.isValidPath(info.path)).toBe(false)
  })))

  test("references, closures and referrers", () => withStore(({ read, write }) => Effect.gen(function*() {
    const a = yield* write.addText("a", "I am a")
    const b = yield* write.addText("b", `I use ${StorePath.print(a.path, read.storeDir)}`, [a.path])
    const c = yield* write.addText("c", `I use ${StorePath.print(b.path, read.storeDir)}`, [b.path])
    expect((yield* read.queryPathInfo(c.path)).references.map(StorePath.baseName)).toEqual([StorePath.baseName(b.path)])
    const closure = yield* computeClosure([c.path])
    expect(closure.map(StorePath.baseName)).toEqual([a.path, b.path, c.path].sort(StorePath.compare).map(StorePath.baseName))
    const referrers = yield* Effect.result(read.queryReferrers(a.path))
    if (Result.isSuccess(referrers)) expect(referrers.success.map(StorePath.baseName)).toEqual([StorePath.baseName(b.path)])
    else expect(referrers.failure._tag).toBe("Unsupported")
  })))

  if (options.checksReferences) {
    test("refuses a path whose references are not valid", () => withStore(({ read, write }) => Effect.gen(function*() {
      const dep = yield* sampleText("dep", "dependency")
      const { info, nar } = yield* sampleText("user", `uses ${StorePath.print(dep.info.path, read.storeDir)}`, [dep.info.path])
      const error = yield* Effect.flip(write.addToStore(info, Stream.make(nar)))
      expect(error._tag).toBe("PathNotValid")
      expect(yield* read.isValidPath(info.path)).toBe(false)
    })))
  }

  test("addMultiple adds dependencies first whatever the order given", () => withStore(({ read, write }) => Effect.gen(function*() {
    const a = yield* sampleText("a", "base")
    const b = yield* sampleText("b", `needs ${StorePath.print(a.info.path, read.storeDir)}`, [a.info.path])
    const c = yield* sampleText("c", `needs ${StorePath.print(b.info.path, read.storeDir)}`, [b.info.path])
    yield* write.addMultiple([c, a, b].map(({ info, nar }) => ({ info, nar: Stream.make(nar) })))
    expect((yield* read.queryValidPaths([a.info.path, b.info.path, c.info.path])).length).toBe(3)
  })))

  test("addSignatures merges signatures without duplicates", () => withStore(({ read, write }) => Effect.gen(function*() {
    const info = yield* write.addText("signed", "data")
    yield* write.addSignatures(info.path, ["k1:AAAA", "k2:BBBB"])
    yield* write.addSignatures(info.path, ["k2:BBBB", "k3:CCCC"])
    expect([...(yield* read.queryPathInfo(info.path)).signatures].sort()).toEqual(["k1:AAAA", "k2:BBBB", "k3:CCCC"])
  })))

  test("missing paths fail with PathNotValid", () => withStore(({ read }) => Effect.gen(function*() {
    const missing = StorePath.makeText("missing", Hash.hashBytes("sha256", "nope"), [], read.storeDir)
    expect((yield* Effect.flip(read.queryPathInfo(missing)))._tag).toBe("PathNotValid")
    expect((yield* Effect.flip(Stream.runDrain(read.narFromPath(missing))))._tag).toBe("PathNotValid")
    expect(yield* read.isValidPath(missing)).toBe(false)
  })))

  test("a large path streams in and out with the same hash", () => withStore(({ read, write }) => Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "b3-conf-big-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const file = join(dir, "big.bin")
    const block = Buffer.alloc(1 << 20)
    for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24
    writeFileSync(file, Buffer.concat(Array.from({ length: 12 }, (_, i) => { const b = Buffer.from(block); b[0] = i; return b })))
    const info = yield* write.addPath(file)
    expect(info.narSize).toBeGreaterThan(12 << 20)
    const hasher = Hash.hasher("sha256")
    let size = 0
    yield* Stream.runForEach(read.narFromPath(info.path), (chunk) => Effect.sync(() => { hasher.update(chunk); size += chunk.length }))
    expect(size).toBe(info.narSize)
    expect(Hash.equals(hasher.digest(), info.narHash)).toBe(true)
  })))
})
