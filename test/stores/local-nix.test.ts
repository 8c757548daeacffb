/**
 * The local store against real Nix: what b3 writes into a chroot store Nix reads as valid (and
 * `nix-store --verify --check-contents` accepts), and what Nix writes b3 reads.
 */
import { afterAll, describe, expect, it } from "vitest"
import { Effect, Stream } from "effect"
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as StorePath from "../../src/core/store-path.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import { b3 } from "../support/b3.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

const makeTree = (dir: string) => {
  mkdirSync(join(dir, "sub/é"), { recursive: true })
  writeFileSync(join(dir, "a.txt"), "alpha\n")
  writeFileSync(join(dir, "sub/tool"), "#!/bin/sh\n")
  chmodSync(join(dir, "sub/tool"), 0o755)
  writeFileSync(join(dir, "sub/é/Z"), Buffer.alloc(70000, 7))
  symlinkSync("../a.txt", join(dir, "sub/link"))
  mkdirSync(join(dir, "empty"))
  return dir
}

interface NixPathInfo { path: string; narHash: string; narSize: number; references: Array<string>; ca?: string }
const nixPathInfo = (root: string, paths: ReadonlyArray<string>): Array<NixPathInfo> =>
  JSON.parse(nix("nix", ["path-info", "--store", root, "--json", ...paths])) as Array<NixPathInfo>

describe("local store ↔ Nix", () => {
  it("paths b3 adds are valid for Nix, with the same path, hash, size, references and contents", async () => {
    const root = join(scratch, "r1")
    const tree = makeTree(join(scratch, "src1"))
    const file = join(scratch, "hello.txt")
    writeFileSync(file, "hello\n")
    const [treePath, filePath] = b3(["store", "add", "--store", root, tree, file]).split("\n")
    expect(treePath).toBe(nix("nix-store", ["--store", join(scratch, "nixroot1"), "--add", tree]))
    const flat = b3(["store", "add-fixed", "--store", root, "--type", "sha1", file])
    expect(flat).toBe(nix("nix-store", ["--store", join(scratch, "nixroot1"), "--add-fixed", "sha1", file]))

    // references, through the API: a text file that mentions the tree
    const textPath = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalStore.make({ root })
      const tp = yield* Effect.fromResult(StorePath.parse(treePath!))
      const info = yield* store.write.addText("uses-tree", `see ${treePath}`, [tp])
      return StorePath.print(info.path)
    })))

    const infos = nixPathInfo(root, [treePath!, filePath!, flat, textPath])
    expect(infos.map((i) => i.path)).toEqual([treePath, filePath, flat, textPath].sort())
    const ours = JSON.parse(b3(["path-info", "--store", root, "--json", treePath!, filePath!, flat, textPath])) as Array<NixPathInfo>
    for (let i = 0; i < infos.length; i++) {
      expect(ours[i]!.narHash).toBe(infos[i]!.narHash)
      expect(ours[i]!.narSize).toBe(infos[i]!.narSize)
      expect(ours[i]!.references).toEqual(infos[i]!.references)
      expect(ours[i]!.ca).toBe(infos[i]!.ca)
    }
    expect(infos.find((i) => i.path === textPath)!.references).toEqual([treePath])
    expect(nixBytes("nix", ["store", "dump-path", "--store", root, treePath!]).equals(nixBytes("nix-store", ["--dump", tree]))).toBe(true)
    // Nix's own consistency check of the whole store
    nix("nix-store", ["--store", root, "--verify", "--check-contents"])
  })

  it("b3 reads paths Nix added", async () => {
    const root = join(scratch, "r2")
    const tree = makeTree(join(scratch, "src2"))
    const added = nix("nix-store", ["--store", root, "--add", tree])
    const [info] = JSON.parse(b3(["path-info", "--store", root, "--json", added])) as Array<NixPathInfo>
    expect(info!.narHash).toBe(nix("nix", ["hash", "path", tree]))
    expect(b3(["path-info", "--store", root, "--closure", added])).toBe(added)
    expect(b3(["store", "verify", "--store", root])).toMatch(/checked 1 paths, 0 problem/)
    // the NAR b3 serves from the store is Nix's, byte for byte
    const ours = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalStore.make({ root })
      const path = yield* Effect.fromResult(StorePath.parse(added))
      return Buffer.concat([...yield* Stream.runCollect(store.read.narFromPath(path))])
    })))
    expect(ours.equals(nixBytes("nix", ["store", "dump-path", "--store", root, added]))).toBe(true)
  })
})
