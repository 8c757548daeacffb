/**
 * The copy pipeline and substitution at scale, by behaviour (no timing):
 *  - a local store's addMultiple reads NARs out of order and at once, yet registers a path only
 *    after its references; a NAR that fails mid-way leaves neither it nor its referrers registered,
 *    and no temporary trees behind;
 *  - raced substituters: all asked at once, the answer taken by priority, falling back to the next
 *    when the preferred one lacks the path;
 *  - a binary cache's negative narinfo cache honours its TTL.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Deferred, Effect, Option, Result, Stream } from "effect"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Hash from "../../src/core/hash.ts"
import * as NarInfo from "../../src/core/narinfo.ts"
import * as Signature from "../../src/core/signature.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import { substituteAll } from "../../src/build/substitute.ts"
import { makeBinaryCacheStore } from "../../src/layers/binary-cache/binary-cache-store.ts"
import type { BlobStore } from "../../src/layers/binary-cache/blob-store.ts"
import { removeTree } from "../../src/layers/local/fs-ops.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { copyPaths } from "../../src/services/copy.ts"
import { fingerprint, type PathInfo } from "../../src/core/path-info.ts"
import { StoreIoError } from "../../src/services/store-errors.ts"
import type { StoreReadApi } from "../../src/services/store-read.ts"
import type { BuildEvent } from "../../src/services/store-build.ts"

const storeDir = StorePath.defaultStoreDir
const key = Signature.generateSecretKey("cache-1")
const trustedKeys = [Signature.publicKeyOf(key)]

const scratchRoot = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-copy-pipeline-"))),
  (dir) => Effect.sync(() => { removeTree(dir); rmSync(dir, { recursive: true, force: true }) })
)

/** An input-addressed-looking path whose contents name its references, signed by `key`. */
const makePath = (name: string, refs: ReadonlyArray<StorePath.StorePath>) => {
  const path = StorePath.make("output:out", Hash.hashBytes("sha256", `copy-pipeline-${name}`), name, storeDir)
  const text = `${name}\n${refs.map((r) => StorePath.print(r, storeDir)).join("\n")}\n`
  const nar = Result.getOrThrow(Tree.toNar(Tree.directory({ bin: Tree.directory({ run: Tree.regular(text, true) }) })))
  const unsigned: PathInfo = { path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [...refs], signatures: [] }
  return { info: { ...unsigned, signatures: [Signature.signDetached(key, fingerprint(unsigned, storeDir))] }, nar }
}
type Item = ReturnType<typeof makePath>

/** A diamond with a tail: leaf ← (left, right) ← top ← extra, plus an unrelated path. */
const graph = () => {
  const leaf = makePath("leaf", [])
  const left = makePath("left", [leaf.info.path])
  const right = makePath("right", [leaf.info.path])
  const top = makePath("top", [left.info.path, right.info.path, leaf.info.path])
  const extra = makePath("extra", [top.info.path])
  const alone = makePath("alone", [])
  return { leaf, left, right, top, extra, alone, all: [leaf, left, right, top, extra, alone] }
}

/** Registration batches as the local store's database sees them (each a transaction). */
const recordRegistrations = (store: LocalStore.LocalStore) => {
  const batches: Array<ReadonlyArray<string>> = []
  const register = store.db.register.bind(store.db)
  store.db.register = (infos, ...rest) => {
    register(infos, ...rest)
    batches.push(infos.map((i) => StorePath.baseName(i.path)))
  }
  return batches
}

/** Every registered path's references were registered in an earlier batch or the same one. */
const expectReferencesFirst = (batches: ReadonlyArray<ReadonlyArray<string>>, items: ReadonlyArray<Item>) => {
  const batchOf = new Map<string, number>()
  batches.forEach((names, i) => names.forEach((n) => batchOf.set(n, i)))
  for (const { info } of items) {
    const mine = batchOf.get(StorePath.baseName(info.path))
    if (mine === undefined) continue
    for (const ref of info.references) {
      const theirs = batchOf.get(StorePath.baseName(ref))
      expect(theirs, `${StorePath.baseName(ref)} registered before ${StorePath.baseName(info.path)}`).toBeDefined()
      expect(theirs!).toBeLessThanOrEqual(mine)
    }
  }
}

/** Temporary trees left behind: in `<state>/b3-tmp` (or as `.b3-tmp-*` names in the store dir). */
const leftovers = (root: string) => [
  ...readdirSync(join(root, "nix/store")).filter((n) => n.startsWith(".")),
  ...(existsSync(join(root, "nix/var/nix/b3-tmp")) ? readdirSync(join(root, "nix/var/nix/b3-tmp")) : [])
]

describe("local addMultiple: parallel restore, ordered commit", () => {
  it.effect("NARs are read at once and out of order (a dependency's NAR only after its referrers'), yet references are registered first", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const batches = recordRegistrations(store)
    const g = graph()
    // The leaf's NAR is held back until the NARs of `top` and `extra` (which need it) have been read
    // whole: a store that waited for references before reading a NAR would never get there.
    const referrersRead = yield* Deferred.make<void>()
    let read = 0
    const items = [g.extra, g.top, g.alone, g.right, g.left, g.leaf].map(({ info, nar }) => ({
      info,
      nar: info.path.name === "leaf"
        ? Stream.unwrap(Effect.as(Deferred.await(referrersRead), Stream.make(nar)))
        : info.path.name === "top" || info.path.name === "extra"
          ? Stream.concat(Stream.make(nar), Stream.fromEffectDrain(Effect.suspend(() => ++read === 2 ? Deferred.succeed(referrersRead, undefined) : Effect.void)))
          : Stream.make(nar)
    }))
    const added: Array<string> = []
    yield* store.write.addMultiple(items, { concurrency: 8, onAdded: (info) => added.push(info.path.name) }).pipe(
      Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.die("addMultiple waited for references before reading NARs") }))
    for (const { info } of g.all) expect(yield* store.read.isValidPath(info.path)).toBe(true)
    expectReferencesFirst(batches, g.all)
    expect(added.sort()).toEqual(g.all.map((i) => i.info.path.name).sort())
    expect((yield* store.maintenance.verify()).problems).toEqual([])
    expect(leftovers(root)).toEqual([])
  })))

  it.effect("a NAR that fails mid-way: neither it nor what refers to it is registered, the rest is consistent, no temporary trees are left", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const batches = recordRegistrations(store)
    const g = graph()
    const broken = (item: Item) => item === g.left
      ? Stream.concat(Stream.make(item.nar.subarray(0, 40)), Stream.fail(new StoreIoError({ store: "test", operation: "GET", reason: "connection reset" })))
      : Stream.make(item.nar)
    const result = yield* Effect.result(store.write.addMultiple(g.all.map((item) => ({ info: item.info, nar: broken(item) })), { concurrency: 4 }))
    expect(Result.isFailure(result) && result.failure._tag).toBe("StoreIoError")
    for (const name of ["left", "top", "extra"] as const) expect(yield* store.read.isValidPath(g[name].info.path)).toBe(false)
    expectReferencesFirst(batches, g.all)
    expect((yield* store.maintenance.verify()).problems).toEqual([])
    expect(leftovers(root)).toEqual([])
    // what was not registered is not in the store dir either (beyond what verify would call garbage)
    const valid = new Set(batches.flat())
    expect(readdirSync(join(root, "nix/store")).filter((n) => !valid.has(n))).toEqual([])
  })))

  it.effect("a NAR whose hash does not match: the path and its referrers stay invalid", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const g = graph()
    const items = g.all.map((item) => ({ info: item.info, nar: Stream.make(item === g.right ? g.left.nar : item.nar) }))
    const result = yield* Effect.result(store.write.addMultiple(items, { concurrency: 2 }))
    expect(Result.isFailure(result)).toBe(true)
    for (const name of ["right", "top", "extra"] as const) expect(yield* store.read.isValidPath(g[name].info.path)).toBe(false)
    expect((yield* store.maintenance.verify()).problems).toEqual([])
    expect(leftovers(root)).toEqual([])
  })))

  it.effect("copyPaths from a store into a local store: the closure, references first, each path once", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const target = yield* LocalStore.make({ root })
    const batches = recordRegistrations(target)
    const source = MemoryStore.make()
    const g = graph()
    for (const { info, nar } of g.all) yield* source.write.addToStore(info, Stream.make(nar))
    const result = yield* copyPaths(source.read, target, [g.extra.info.path], { trustedKeys, concurrency: 3 })
    expect(result.copied.map((p) => p.name).sort()).toEqual(["extra", "leaf", "left", "right", "top"])
    expectReferencesFirst(batches, g.all)
    expect(batches.flat().sort()).toEqual(result.copied.map(StorePath.baseName).sort())
    const again = yield* copyPaths(source.read, target, [g.extra.info.path], { trustedKeys })
    expect(again.copied).toEqual([])
    expect(again.skipped.map((p) => p.name).sort()).toEqual(["extra", "leaf", "left", "right", "top"])
  })))

  it.effect("the generic addMultiple (in-memory store) adds references first, several at once", () => Effect.gen(function*() {
    const target = MemoryStore.make()
    const g = graph()
    const added: Array<string> = []
    yield* target.write.addMultiple([...g.all].reverse().map(({ info, nar }) => ({ info, nar: Stream.make(nar) })), { concurrency: 4, onAdded: (i) => added.push(i.path.name) })
    for (const { info } of g.all) {
      expect(yield* target.read.isValidPath(info.path)).toBe(true)
      for (const ref of info.references) expect(added.indexOf(ref.name)).toBeLessThan(added.indexOf(info.path.name))
    }
  }))
})

describe("raced substituters", () => {
  /** An in-memory cache holding `items`, with a priority and a name. */
  const cacheWith = (uri: string, priority: number, items: ReadonlyArray<Item>, hooks: { beforeAnswer?: Effect.Effect<void>; onAsked?: Effect.Effect<void> } = {}) =>
    Effect.gen(function*() {
      const store = MemoryStore.make()
      for (const { info, nar } of items) yield* store.write.addToStore(info, Stream.make(nar))
      const read: StoreReadApi = {
        ...store.read, uri, priority,
        queryValidPaths: (paths) => Effect.andThen(
          Effect.andThen(hooks.onAsked ?? Effect.void, hooks.beforeAnswer ?? Effect.void),
          store.read.queryValidPaths(paths))
      }
      return read
    })

  const substituteInto = (substituters: ReadonlyArray<StoreReadApi>, item: Item) => Effect.gen(function*() {
    const target = MemoryStore.make()
    const events: Array<BuildEvent> = []
    const ok = yield* substituteAll([item.info.path], "/nix/store/x-test.drv", { substituters, trustedKeys, onEvent: (e) => events.push(e) }).pipe(
      Effect.provideContext(MemoryStore.context(target)))
    const from = events.flatMap((e) => (e.type === "substituting" ? [e.from] : []))
    return { ok, from, valid: yield* target.read.isValidPath(item.info.path) }
  })

  it.effect("when both have the path, the one with the better (lower) priority gives it, whatever the order given", () => Effect.gen(function*() {
    const { leaf } = graph()
    const slow = yield* cacheWith("memory://fifty", 50, [leaf])
    const fast = yield* cacheWith("memory://ten", 10, [leaf])
    expect(yield* substituteInto([slow, fast], leaf)).toEqual({ ok: true, from: ["memory://ten"], valid: true })
    expect(yield* substituteInto([fast, slow], leaf)).toEqual({ ok: true, from: ["memory://ten"], valid: true })
  }))

  it.effect("equal priorities keep the order given", () => Effect.gen(function*() {
    const { leaf } = graph()
    const a = yield* cacheWith("memory://a", 40, [leaf])
    const b = yield* cacheWith("memory://b", 40, [leaf])
    expect((yield* substituteInto([b, a], leaf)).from).toEqual(["memory://b"])
  }))

  it.effect("the preferred substituter lacks the path: the next one gives it", () => Effect.gen(function*() {
    const { leaf, alone } = graph()
    const preferred = yield* cacheWith("memory://preferred", 10, [alone])
    const other = yield* cacheWith("memory://other", 50, [leaf])
    expect(yield* substituteInto([preferred, other], leaf)).toEqual({ ok: true, from: ["memory://other"], valid: true })
  }))

  it.effect("all substituters are asked at once: the preferred one answers only after the other was asked", () => Effect.gen(function*() {
    const { leaf } = graph()
    const otherAsked = yield* Deferred.make<void>()
    // Asked one after the other, the preferred one would wait for ever (the timeout fails the test).
    const preferred = yield* cacheWith("memory://preferred", 10, [], { beforeAnswer: Deferred.await(otherAsked) })
    const other = yield* cacheWith("memory://other", 50, [leaf], { onAsked: Deferred.succeed(otherAsked, undefined).pipe(Effect.asVoid) })
    const result = yield* substituteInto([preferred, other], leaf).pipe(
      Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.die("substituters were asked one at a time") }))
    expect(result).toEqual({ ok: true, from: ["memory://other"], valid: true })
  }))

  it.effect("a substituter whose copy is unsigned is passed over for one that is trusted", () => Effect.gen(function*() {
    const { leaf } = graph()
    const unsigned = { info: { ...leaf.info, signatures: [] }, nar: leaf.nar }
    const preferred = yield* cacheWith("memory://unsigned", 10, [unsigned])
    const other = yield* cacheWith("memory://signed", 50, [leaf])
    expect(yield* substituteInto([preferred, other], leaf)).toEqual({ ok: true, from: ["memory://signed"], valid: true })
  }))

  it.effect("nobody has it: false, nothing added", () => Effect.gen(function*() {
    const { leaf, alone } = graph()
    const a = yield* cacheWith("memory://a", 10, [alone])
    expect(yield* substituteInto([a], leaf)).toEqual({ ok: false, from: [], valid: false })
  }))
})

describe("binary cache negative narinfo cache", () => {
  /** Blobs in a map, counting narinfo requests. */
  const countingBlobs = () => {
    const blobs = new Map<string, Uint8Array>()
    const asked = new Map<string, number>()
    const store: BlobStore = {
      uri: "test://blobs",
      spoolDir: tmpdir(),
      exists: (k) => Effect.succeed(blobs.has(k)),
      getBytes: (k) => Effect.sync(() => { asked.set(k, (asked.get(k) ?? 0) + 1); return Option.fromNullishOr(blobs.get(k)) }),
      getStream: (k) => blobs.has(k) ? Stream.make(blobs.get(k)!) : Stream.fail(new StoreIoError({ store: "test", operation: `GET ${k}`, reason: "not found" })),
      putFile: () => Effect.die("not used"),
      putBytes: (k, bytes) => Effect.sync(() => { blobs.set(k, bytes) })
    }
    return { blobs, asked, store }
  }

  it.effect("a miss is remembered for the TTL, then asked again (and then found)", () => Effect.gen(function*() {
    const { blobs, asked, store } = countingBlobs()
    blobs.set("nix-cache-info", new TextEncoder().encode(`StoreDir: ${storeDir}\n`))
    let now = 1_000_000
    const clock = vi.spyOn(Date, "now").mockImplementation(() => now)
    try {
      const cache = yield* makeBinaryCacheStore(store, { writable: false, negativeTtlMs: 10_000 })
      const { leaf } = graph()
      const narinfo = `${leaf.info.path.hashPart}.narinfo`
      expect(yield* cache.read.isValidPath(leaf.info.path)).toBe(false)
      expect(asked.get(narinfo)).toBe(1)
      // it appears in the cache, but within the TTL the miss stands, without a request
      blobs.set(narinfo, new TextEncoder().encode(NarInfo.print({
        storePath: StorePath.print(leaf.info.path, storeDir), url: "nar/x.nar", compression: "none",
        narHash: leaf.info.narHash, narSize: leaf.info.narSize, references: [], sigs: leaf.info.signatures
      })))
      now += 9_999
      expect(yield* cache.read.isValidPath(leaf.info.path)).toBe(false)
      expect(asked.get(narinfo)).toBe(1)
      // past the TTL it is asked again and found; a hit is not asked again
      now += 2
      expect(yield* cache.read.isValidPath(leaf.info.path)).toBe(true)
      expect(asked.get(narinfo)).toBe(2)
      now += 1_000_000
      expect(yield* cache.read.isValidPath(leaf.info.path)).toBe(true)
      expect(asked.get(narinfo)).toBe(2)
    } finally {
      clock.mockRestore()
    }
  }))

  it.effect("narinfos kept in memory are bounded: past the bound the least recently used is read again", () => Effect.gen(function*() {
    const { blobs, asked, store } = countingBlobs()
    blobs.set("nix-cache-info", new TextEncoder().encode(`StoreDir: ${storeDir}\n`))
    const cache = yield* makeBinaryCacheStore(store, { writable: false, maxCachedNarInfos: 2 })
    const paths = ["a", "b", "c"].map((name) => StorePath.makeText(name, Hash.hashBytes("sha256", new TextEncoder().encode(name)), [], storeDir))
    for (const path of paths) {
      blobs.set(`${path.hashPart}.narinfo`, new TextEncoder().encode(NarInfo.print({
        storePath: StorePath.print(path, storeDir), url: `nar/${path.hashPart}.nar`, compression: "none",
        narHash: Hash.hashBytes("sha256", new Uint8Array([1])), narSize: 8, references: [], sigs: []
      })))
    }
    const reads = (i: number) => asked.get(`${paths[i]!.hashPart}.narinfo`) ?? 0
    const [a, b, c] = paths as [StorePath.StorePath, StorePath.StorePath, StorePath.StorePath]
    expect(yield* cache.read.isValidPath(a)).toBe(true)
    expect(yield* cache.read.isValidPath(b)).toBe(true)
    expect(yield* cache.read.isValidPath(a)).toBe(true) // a is now the most recently used
    expect([reads(0), reads(1)]).toEqual([1, 1])
    expect(yield* cache.read.isValidPath(c)).toBe(true) // b, the least recently used, is dropped
    expect(yield* cache.read.isValidPath(a)).toBe(true)
    expect(reads(0)).toBe(1)
    expect(yield* cache.read.isValidPath(b)).toBe(true)
    expect(reads(1)).toBe(2)
  }))

  it.effect("with a TTL of 0 every lookup of a missing path asks the cache", () => Effect.gen(function*() {
    const { blobs, asked, store } = countingBlobs()
    blobs.set("nix-cache-info", new TextEncoder().encode(`StoreDir: ${storeDir}\nPriority: 30\n`))
    const cache = yield* makeBinaryCacheStore(store, { writable: false, negativeTtlMs: 0 })
    expect(cache.read.priority).toBe(30)
    const { leaf } = graph()
    for (let i = 0; i < 3; i++) expect(yield* cache.read.isValidPath(leaf.info.path)).toBe(false)
    expect(asked.get(`${leaf.info.path.hashPart}.narinfo`)).toBe(3)
  }))
})
