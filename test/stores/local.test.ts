import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as StorePath from "../../src/core/store-path.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { removeTree } from "../../src/layers/local/fs-ops.ts"
import { narInMemory } from "../../src/nar/check.ts"
import type { PathInfo } from "../../src/core/path-info.ts"
import { storeConformance, uriStore } from "./store-suite.ts"

const scratchRoot = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-local-"))),
  (dir) => Effect.sync(() => { removeTree(dir); rmSync(dir, { recursive: true, force: true }) })
)

storeConformance("local?root= (chroot store)", () => uriStore(Effect.map(scratchRoot, (root) => `local?root=${root}`)), { checksReferences: true })
storeConformance("local (LocalStore.layer, non-default store dir)", () =>
  Layer.unwrap(Effect.map(scratchRoot, (root) => LocalStore.layer({ root, storeDir: "/b3/store" }))), { checksReferences: true })

describe("local store group commit", () => {
  it.effect("concurrent adds, some of the same path, each end valid once, with nothing left over", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const mem = MemoryStore.make()
    const samples = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), (i) =>
      Effect.flatMap(mem.write.addText(`t${i}`, `text ${i}\n`.repeat(i + 1)), (info) =>
        Effect.map(Stream.runCollect(mem.read.narFromPath(info.path)), (chunks) => ({ info, nar: Buffer.concat([...chunks]) }))))
    // 36 adds at once: every sample three times
    yield* Effect.forEach([...samples, ...samples, ...samples], ({ info, nar }) =>
      store.write.addToStore(info, Stream.make(new Uint8Array(nar))), { concurrency: 36, discard: true })
    for (const { info, nar } of samples) {
      const back = Buffer.concat([...yield* Stream.runCollect(store.read.narFromPath(info.path))])
      expect(back.equals(nar)).toBe(true)
    }
    const report = yield* store.maintenance.verify()
    expect(report.problems).toEqual([])
    expect(readdirSync(join(root, "nix/store")).filter((n) => n.startsWith("."))).toEqual([])
  })))
})

describe("local store addMultiple of NARs in memory", () => {
  /** `count` text paths, each referring to the one before, as items with their NARs in memory (last first). */
  const chain = (count: number) => Effect.gen(function*() {
    const mem = MemoryStore.make()
    const items: Array<{ info: PathInfo; nar: Uint8Array }> = []
    for (let i = 0; i < count; i++) {
      const info = yield* mem.write.addText(`c${i}`, `link ${i}\n`, items.length > 0 ? [items[items.length - 1]!.info.path] : [])
      items.push({ info, nar: Buffer.concat([...yield* Stream.runCollect(mem.read.narFromPath(info.path))]) })
    }
    return items.reverse()
  })
  /** The NAR with one byte of its file's contents changed (still a well-formed NAR). */
  const tampered = (nar: Uint8Array) => { const copy = Buffer.from(nar); copy[copy.indexOf("link ")] = 0x4c; return copy }
  const leftovers = (root: string) => readdirSync(join(root, "nix/var/nix/b3-tmp"))
  const inMemory = (items: ReadonlyArray<{ info: PathInfo; nar: Uint8Array }>) => items.map(({ info, nar }) => ({ info, nar: narInMemory(nar) }))
  /** Every item's path reads back its NAR, the store verifies clean, and no temporary tree is left. */
  const expectAllAdded = (store: LocalStore.LocalStore, root: string, items: ReadonlyArray<{ info: PathInfo; nar: Uint8Array }>) => Effect.gen(function*() {
    for (const { info, nar } of items) expect(Buffer.concat([...yield* Stream.runCollect(store.read.narFromPath(info.path))]).equals(nar)).toBe(true)
    expect((yield* store.maintenance.verify()).problems).toEqual([])
    expect(leftovers(root)).toEqual([])
  })

  it.effect("registers a batch given in any order, one already valid, in one flush (syncfs past 64 entries) with nothing left over", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const items = yield* chain(100)
    const first = items[items.length - 1]!
    yield* store.write.addToStore(first.info, Stream.make(first.nar))
    const added: Array<string> = []
    yield* store.write.addMultiple(inMemory(items), { inMemory: true, onAdded: (info) => added.push(info.path.name) })
    expect(added.length).toBe(100)
    yield* expectAllAdded(store, root, items)
  })))

  it.effect("whatever is left, not valid, where a path goes (a file, a directory with files, an empty directory) is replaced", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const items = yield* chain(3)
    const place = (i: number) => join(root, "nix/store", StorePath.baseName(items[i]!.info.path))
    writeFileSync(place(0), "junk")
    mkdirSync(join(place(1), "sub"), { recursive: true })
    writeFileSync(join(place(1), "sub/file"), "junk")
    mkdirSync(place(2))
    yield* store.write.addMultiple(inMemory(items), { inMemory: true })
    yield* expectAllAdded(store, root, items)
  })))

  it.effect("a NAR that does not match its info fails the batch: nothing of it is registered or left behind", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const items = yield* chain(10)
    const bad = items.map(({ info, nar }, i) => ({ info, nar: narInMemory(i === 3 ? tampered(nar) : nar) }))
    const failure = yield* Effect.flip(store.write.addMultiple(bad, { inMemory: true }))
    expect(failure._tag).toBe("HashMismatch")
    expect(yield* store.read.queryValidPaths(items.map((i) => i.info.path))).toEqual([])
    expect(leftovers(root)).toEqual([])
  })))
})

/** Every entry's metadata as Nix leaves store contents: mtime 1; 0555 for directories and executables, else 0444. */
const expectCanonical = (path: string) => {
  const st = lstatSync(path)
  expect([path, st.mtimeMs]).toEqual([path, 1000])
  if (st.isSymbolicLink()) return
  const executable = st.isDirectory() || (st.mode & 0o100) !== 0
  expect([path, (st.mode & 0o7777).toString(8)]).toEqual([path, executable ? "555" : "444"])
  if (st.isDirectory()) for (const name of readdirSync(path)) expectCanonical(join(path, name))
}

describe("local store metadata", () => {
  it.effect("paths added from a NAR, from a tree and from a single file have Nix's canonical metadata", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const src = join(root, "src")
    mkdirSync(join(src, "tree/sub"), { recursive: true })
    writeFileSync(join(src, "tree/a"), "a\n")
    writeFileSync(join(src, "tree/sub/run"), "#!/bin/sh\n", { mode: 0o700 })
    writeFileSync(join(src, "tree/big"), Buffer.alloc(300 * 1024, 7)) // written in the background
    symlinkSync("a", join(src, "tree/link"))
    writeFileSync(join(src, "single"), "just one file\n", { mode: 0o600 })
    const fromTree = yield* store.write.addPath(join(src, "tree"))
    const fromFile = yield* store.write.addPath(join(src, "single"))
    // the same tree again through a NAR from another store
    const mem = MemoryStore.make()
    const info = yield* mem.write.addPath(join(src, "tree"), { name: "again" })
    yield* store.write.addToStore(info, mem.read.narFromPath(info.path))
    for (const path of [fromTree.path, fromFile.path, info.path]) expectCanonical(join(root, "nix/store", StorePath.baseName(path)))
  })))
})
