/** restoreNar: what it writes, and that nothing escapes the target or survives a failure. */
import { Deferred, Effect, Fiber, Result, Stream } from "effect"
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Tree from "../../src/nar/tree.ts"
import { BadNar } from "../../src/nar/errors.ts"
import { TargetExists } from "../../src/nar/fs/errors.ts"
import { narFromPath } from "../../src/nar/fs/dump-path.ts"
import { restoreNar } from "../../src/nar/fs/restore.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"
import { chunked, collectBytes, NarBuilder } from "./support.ts"

const scratch = makeScratch("b3-nar-restore-")
afterAll(() => removeScratch(scratch))
let counter = 0
/** A fresh, empty parent directory: after a failed restore it must be empty again. */
const freshParent = () => {
  const dir = join(scratch, `case-${counter++}`)
  mkdirSync(dir)
  return dir
}

const restore = (nar: Uint8Array | ReadonlyArray<Uint8Array>, target: string) =>
  Effect.runPromise(Effect.result(restoreNar(Stream.fromIterable(nar instanceof Uint8Array ? [nar] : nar), target)))

const tree = Tree.directory({
  bin: Tree.directory({ tool: Tree.regular("#!/bin/sh\n", true) }),
  empty: Tree.directory(),
  file: Tree.regular("hello"),
  link: Tree.symlink("file"),
  "é": Tree.regular(new Uint8Array(100_000).fill(3))
})
const treeNar = Result.getOrThrow(Tree.toNar(tree))

describe("restoreNar", () => {
  it("restores files, executables, empty directories and symlinks, in any chunking", async () => {
    for (const cuts of [[], [1, 2, 3, 100, 101, 5000], Array.from({ length: 60 }, (_, i) => i * 97)]) {
      const parent = freshParent()
      const target = join(parent, "out")
      const result = await restore(chunked(treeNar, cuts), target)
      expect(result._tag).toBe("Success")
      expect(readdirSync(parent)).toEqual(["out"])
      expect(readFileSync(join(target, "file"), "utf8")).toBe("hello")
      expect(lstatSync(join(target, "bin/tool")).mode & 0o111).toBe(0o111)
      expect(lstatSync(join(target, "file")).mode & 0o111).toBe(0)
      expect(readdirSync(join(target, "empty"))).toEqual([])
      expect(readlinkSync(join(target, "link"))).toBe("file")
      expect((await collectBytes(narFromPath(target))).equals(treeNar)).toBe(true)
    }
  })

  it("a big file arriving in small pieces (gathered and written together in the background), mixed with big pieces, comes out whole", async () => {
    // 5 MiB of varied bytes: more than one gathered write, with pieces of 4 KiB, some of 100 KiB (written at once), odd ones
    const big = new Uint8Array(5 * 1024 * 1024 + 13)
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >>> 11)) & 0xff
    const nar = Result.getOrThrow(Tree.toNar(Tree.directory({ big: Tree.regular(big), small: Tree.regular("s") })))
    const cuts: Array<number> = []
    for (let at = 0, k = 0; at < nar.length; k++) { at += k % 50 === 7 ? 100 * 1024 : k % 13 === 0 ? 777 : 4096; cuts.push(at) }
    const parent = freshParent()
    const target = join(parent, "out")
    expect((await restore(chunked(nar, cuts.filter((c) => c < nar.length)), target))._tag).toBe("Success")
    expect(readFileSync(join(target, "big")).equals(Buffer.from(big))).toBe(true)
    expect(readFileSync(join(target, "small"), "utf8")).toBe("s")
  })

  it("restores a single file and a single symlink as the root", async () => {
    const parent = freshParent()
    expect((await restore(Result.getOrThrow(Tree.toNar(Tree.regular("x", true))), join(parent, "f")))._tag).toBe("Success")
    expect(readFileSync(join(parent, "f"), "utf8")).toBe("x")
    expect(lstatSync(join(parent, "f")).mode & 0o100).toBe(0o100)
    expect((await restore(Result.getOrThrow(Tree.toNar(Tree.symlink("/etc"))), join(parent, "l")))._tag).toBe("Success")
    expect(readlinkSync(join(parent, "l"))).toBe("/etc")
  })

  it("a tree of thousands of small files (written by worker threads in batches) comes out whole, plain and canonical", async () => {
    // 40 directories of 60 files: past the files a restore writes itself, with executables, empty
    // files, files of up to 70 KiB (some too big to batch), symlinks and nested directories between them
    const dirs: Record<string, Tree.Tree> = {}
    for (let d = 0; d < 40; d++) {
      const entries: Record<string, Tree.Tree> = { [`sub${d}`]: Tree.directory({ inner: Tree.regular(`inner ${d}`) }), link: Tree.symlink(`f${d}`) }
      for (let f = 0; f < 60; f++) {
        const size = (d * 60 + f) % 97 === 0 ? 70_000 : ((d * 60 + f) * 7919) % 3000
        entries[`f${f}`] = Tree.regular(new Uint8Array(size).fill((d + f) & 0xff), f % 7 === 0)
      }
      dirs[`d${d}`] = Tree.directory(entries)
    }
    const nar = Result.getOrThrow(Tree.toNar(Tree.directory(dirs)))
    for (const canonical of [false, true]) {
      const target = join(freshParent(), "out")
      const result = await Effect.runPromise(Effect.result(restoreNar(Stream.fromIterable(chunked(nar, [100, 5000, 300_000])), target, { canonical })))
      expect(result._tag).toBe("Success")
      expect((await collectBytes(narFromPath(target))).equals(nar)).toBe(true)
      if (!canonical) continue
      const walk = (path: string): void => {
        const st = lstatSync(path)
        if (st.isSymbolicLink()) return
        expect(st.mtimeMs, path).toBe(1000)
        expect(st.mode & 0o777, path).toBe(st.isDirectory() || (st.mode & 0o100) !== 0 ? 0o555 : 0o444)
        if (st.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name))
      }
      walk(target)
    }
  })

  it("never replaces an existing target (a file, a directory or a dangling symlink)", async () => {
    const parent = freshParent()
    writeFileSync(join(parent, "file"), "keep")
    mkdirSync(join(parent, "dir"))
    symlinkSync("nowhere", join(parent, "dangling"))
    for (const name of ["file", "dir", "dangling"]) {
      const result = await restore(treeNar, join(parent, name))
      expect(result._tag === "Failure" && result.failure).toBeInstanceOf(TargetExists)
    }
    expect(readFileSync(join(parent, "file"), "utf8")).toBe("keep")
    expect(readdirSync(join(parent, "dir"))).toEqual([])
    expect(readdirSync(parent).sort()).toEqual(["dangling", "dir", "file"])
  })

  it("a malformed archive fails with BadNar and leaves nothing behind, even after files were written", async () => {
    const cases = [
      treeNar.subarray(0, treeNar.length - 20), // truncated after everything was written
      treeNar.subarray(0, 700),
      new NarBuilder().magic().openDir().entry("a", (x) => x.file("1")).entry("..", (x) => x.file("evil")).close().bytes(),
      new NarBuilder().magic().openDir().entry("a", (x) => x.file("1")).entry("../escape", (x) => x.file("evil")).close().bytes(),
      new NarBuilder().magic().openDir().entry("a", (x) => x.file("1")).entry("b/c", (x) => x.file("evil")).close().bytes()
    ]
    for (const nar of cases) {
      const parent = freshParent()
      const result = await restore(chunked(nar, [200, 400]), join(parent, "out"))
      expect(result._tag === "Failure" && result.failure).toBeInstanceOf(BadNar)
      expect(readdirSync(parent)).toEqual([])
    }
    expect(readdirSync(scratch).some((n) => n.includes("escape") || n.includes("evil"))).toBe(false)
  })

  it("cannot write through a symlink it created: a second entry of the same name is rejected", async () => {
    const outside = freshParent()
    const parent = freshParent()
    for (const second of [(x: NarBuilder) => x.file("evil"), (x: NarBuilder) => x.openDir().entry("f", (y) => y.file("evil")).close()]) {
      const nar = new NarBuilder().magic().openDir().entry("link", (x) => x.symlink(outside)).entry("link", second).close().bytes()
      const result = await restore(nar, join(parent, "out"))
      expect(result._tag === "Failure" && result.failure).toBeInstanceOf(BadNar)
    }
    expect(readdirSync(outside)).toEqual([])
    expect(readdirSync(parent)).toEqual([])
  })

  it("an interrupted restore removes its temporary tree", async () => {
    const parent = freshParent()
    const program = Effect.gen(function*() {
      const firstChunkDone = yield* Deferred.make<void>()
      // half the archive, then a signal once the restore asks for more, then nothing ever again
      const input = Stream.concat(
        Stream.make(treeNar.subarray(0, 600)),
        Stream.concat(Stream.fromEffect(Deferred.succeed(firstChunkDone, undefined)).pipe(Stream.drain), Stream.never)
      )
      const fiber = yield* Effect.forkChild(restoreNar(input, join(parent, "out")))
      yield* Deferred.await(firstChunkDone)
      const during = readdirSync(parent)
      yield* Fiber.interrupt(fiber)
      return during
    })
    const during = await Effect.runPromise(program)
    expect(during.length).toBe(1)
    expect(during[0]).toMatch(/^\.out\.restore-/)
    expect(readdirSync(parent)).toEqual([])
  })
})
