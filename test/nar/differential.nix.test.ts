/**
 * Our NAR encoder, digest and restore against Nix 2.8's `nix-store --dump`, `nix-store --restore`
 * and `nix-hash` on generated trees: identical bytes both ways, identical trees after restoring.
 */
import { Effect, Result, Stream } from "effect"
import fc from "fast-check"
import { createHash } from "node:crypto"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Hash from "../../src/core/hash.ts"
import * as Tree from "../../src/nar/tree.ts"
import { narDigestOfPath, narFromPath } from "../../src/nar/fs/dump-path.ts"
import { restoreNar } from "../../src/nar/fs/restore.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"
import { arbTree, collectBytes, makeKitchenSink, writeDump } from "./support.ts"

const scratch = makeScratch("b3-nar-diff-")
afterAll(() => removeScratch(scratch))
let counter = 0
const fresh = (label: string) => join(scratch, `${label}-${counter++}`)

const nixDump = (path: string) => nixBytes("nix-store", ["--dump", path])
const nixRestore = (nar: Uint8Array, target: string) => nix("nix-store", ["--restore", target], { input: nar })
const ourDump = (path: string, workers?: number) => collectBytes(narFromPath(path, workers === undefined ? {} : { workers }))
const ourRestore = (nar: Uint8Array, target: string) => Effect.runPromise(restoreNar(Stream.make(nar), target))

/** Everything we check for one path: dump bytes, digests, and restores in both directions. */
const checkAgainstNix = async (path: string) => {
  const expected = nixDump(path)
  const ours = await ourDump(path)
  expect(ours.length).toBe(expected.length)
  expect(ours.equals(expected)).toBe(true)
  expect((await ourDump(path, 0)).equals(expected)).toBe(true)

  const digest = await Effect.runPromise(narDigestOfPath(path))
  expect(digest.size).toBe(expected.length)
  expect(Hash.encode(digest.hash, "base16")).toBe(createHash("sha256").update(expected).digest("hex"))
  expect(Hash.encode(digest.hash, "base16")).toBe(nix("nix-hash", ["--type", "sha256", path]))

  // Nix's NAR restored by us, ours restored by Nix: both dump (by Nix) to the original bytes
  const byUs = fresh("restored-by-b3")
  await ourRestore(expected, byUs)
  expect(nixDump(byUs).equals(expected)).toBe(true)
  const byNix = fresh("restored-by-nix")
  nixRestore(ours, byNix)
  expect(nixDump(byNix).equals(expected)).toBe(true)
  return expected
}

describe("NAR vs nix-store --dump / --restore / nix-hash", () => {
  it("a tree with tricky names, executables, empty dirs, every kind of symlink, small and multi-MiB files", async () => {
    const tree = makeKitchenSink(fresh("kitchen"))
    const nar = await checkAgainstNix(tree)
    // the tree really has what it claims: Nix's NAR holds the non-UTF-8 name and the executables
    expect(nar.includes(Buffer.from([0xff, 0x61]))).toBe(true)
    expect(nar.includes(Buffer.from("executable"))).toBe(true)
  })

  it("single files (empty, small, executable, big) and symlinks as the root", async () => {
    const dir = fresh("roots")
    mkdirSync(dir)
    const cases: Array<[string, Tree.Tree]> = [
      ["empty", Tree.regular("")],
      ["one", Tree.regular("x")],
      ["nine", Tree.regular("123456789", true)],
      ["big", Tree.regular(new Uint8Array(2 * 1024 * 1024 + 3).fill(7))],
      ["relative", Tree.symlink("../somewhere")],
      ["absolute", Tree.symlink("/nix/store/abc")],
      ["dangling", Tree.symlink("does/not/exist")]
    ]
    for (const [name, dump] of cases) {
      writeDump(dump, join(dir, name))
      const nar = await checkAgainstNix(join(dir, name))
      expect(Buffer.from(Result.getOrThrow(Tree.toNar(dump))).equals(nar)).toBe(true)
    }
  })

  it("random trees: same bytes as Nix, and the same bytes as the in-memory Dump encoder", async () => {
    const trees = fc.sample(arbTree, { numRuns: 25, seed: 0x3a7 })
    for (const tree of trees) {
      const path = fresh("random")
      writeDump(tree, path)
      const nar = await checkAgainstNix(path)
      expect(Buffer.from(Result.getOrThrow(Tree.toNar(tree))).equals(nar)).toBe(true)
    }
  })

  it("a large tree (directories split into several jobs, worker threads) dumps exactly like Nix", async () => {
    const root = fresh("large")
    mkdirSync(root)
    // one directory with many entries and several MiB of small files, and many small directories
    mkdirSync(join(root, "wide"))
    for (let i = 0; i < 1500; i++) writeFileSync(join(root, "wide", `f${i}`), Buffer.alloc((i * 977) % 9000, i & 0xff), { mode: i % 7 === 0 ? 0o755 : 0o644 })
    for (let d = 0; d < 60; d++) {
      const dir = join(root, `d${d}`, `sub${d % 3}`)
      mkdirSync(dir, { recursive: true })
      for (let i = 0; i < 30; i++) writeFileSync(join(dir, `g${i}`), `${d}/${i}`)
      writeFileSync(join(dir, "mid"), Buffer.alloc(300 * 1024 + d, d))
    }
    const expected = nixDump(root)
    for (const workers of [undefined, 0, 1, 2, 4]) {
      expect((await ourDump(root, workers)).equals(expected)).toBe(true)
    }
    await checkAgainstNix(root)
  })
})
