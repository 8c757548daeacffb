/**
 * Store paths computed by b3 against the ones real Nix 2.8 gives, on generated inputs:
 * `nix-store --add-fixed [--recursive] ALGO`, `nix-store --add`, and `builtins.toFile` with and
 * without references, in the default and a non-default store dir.
 */
import { afterAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Result } from "effect"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { b3 } from "../support/b3.ts"
import { makeScratch, nix, nixEnv, removeScratch } from "../support/nix.ts"
import { spawnSync } from "node:child_process"

const seed = Date.now() % 2 ** 31
console.log(`store-path conformance seed: ${seed}`)
const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?="
const arbStoreName = fc.tuple(fc.constantFrom(...nameChars.replace(".", "")), fc.string({ unit: fc.constantFrom(...nameChars), maxLength: 40 }))
  .map(([a, b]) => a + b)
// File names inside trees: anything but '/' and NUL, including unicode.
const arbEntryName = fc.string({ unit: fc.oneof(fc.constantFrom(..."aZ09_-.é😀Ωx"), fc.string({ unit: "binary", minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 12 })
  .filter((s) => !s.includes("/") && !s.includes("\0") && s !== "." && s !== "..")

type Tree = { kind: "file"; contents: Uint8Array; executable: boolean } | { kind: "link"; target: string } | { kind: "dir"; entries: Record<string, Tree> }
const arbTree: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof({ depthSize: "small", withCrossShrink: true },
    fc.record({ kind: fc.constant("file" as const), contents: fc.uint8Array({ maxLength: 300 }), executable: fc.boolean() }),
    fc.record({ kind: fc.constant("link" as const), target: fc.constantFrom("a", "../x", "/abs/target", "dangling/é") }),
    fc.record({ kind: fc.constant("dir" as const), entries: fc.dictionary(arbEntryName, tie("tree"), { maxKeys: 4 }) }))
})).tree

const writeTree = (path: string, tree: Tree): void => {
  if (tree.kind === "file") { writeFileSync(path, tree.contents); chmodSync(path, tree.executable ? 0o755 : 0o644) }
  else if (tree.kind === "link") symlinkSync(tree.target, path)
  else { mkdirSync(path); for (const [name, sub] of Object.entries(tree.entries)) writeTree(join(path, name), sub) }
}

const unique = <A>(xs: ReadonlyArray<A>, key: (a: A) => string) => [...new Map(xs.map((x) => [key(x), x])).values()]

const flatInputs = unique(fc.sample(fc.record({ name: arbStoreName, contents: fc.uint8Array({ maxLength: 2000 }) }), { numRuns: 25, seed }), (x) => x.name)
const treeInputs = unique(fc.sample(fc.record({ name: arbStoreName, tree: arbTree }), { numRuns: 15, seed: seed + 1 }), (x) => x.name)

const writeFlatInputs = (dir: string) => flatInputs.map(({ name, contents }) => {
  mkdirSync(join(dir, name), { recursive: true })
  const path = join(dir, name, name)
  writeFileSync(path, contents)
  return path
})
const writeTreeInputs = (dir: string) => treeInputs.map(({ name, tree }) => {
  mkdirSync(join(dir, name), { recursive: true })
  const path = join(dir, name, name)
  writeTree(path, tree)
  return path
})

const storeFor = (storeDir: string) => {
  const root = makeScratch("b3-nixroot-")
  return storeDir === StorePath.defaultStoreDir ? root : `local?root=${root}&store=${storeDir}`
}

describe.each([StorePath.defaultStoreDir, "/b3/other-store"])("store paths in %s", (storeDir) => {
  const store = storeFor(storeDir)
  const base = join(scratch, storeDir.replaceAll("/", "_"))

  it.each(Hash.hashAlgorithms)("nix-store --add-fixed %s (flat) gives the same paths", (algorithm) => {
    const paths = writeFlatInputs(join(base, `flat-${algorithm}`))
    const nixPaths = nix("nix-store", ["--store", store, "--add-fixed", algorithm, ...paths]).split("\n")
    const ours = flatInputs.map(({ name, contents }) =>
      StorePath.print(StorePath.makeFixedOutput("flat", Hash.hashBytes(algorithm, contents), name, { storeDir }), storeDir))
    expect(ours).toEqual(nixPaths)
  })

  it.each(["sha256", "sha1", "sha512"] as const)("nix-store --add-fixed --recursive %s gives the same paths", (algorithm) => {
    const paths = writeTreeInputs(join(base, `rec-${algorithm}`))
    const nixPaths = nix("nix-store", ["--store", store, "--add-fixed", "--recursive", algorithm, ...paths]).split("\n")
    const ours = paths.map((path, i) => {
      // The NAR hash comes from nix-hash, so this checks the path computation alone.
      const narHash = Result.getOrThrow(Hash.parse(nix("nix-hash", ["--type", algorithm, "--base32", path]), algorithm))
      return StorePath.print(StorePath.makeFixedOutput("recursive", narHash, treeInputs[i]!.name, { storeDir }), storeDir)
    })
    expect(ours).toEqual(nixPaths)
  })

  it("nix-store --add gives the same paths as a recursive sha256 source", () => {
    const paths = writeTreeInputs(join(base, "add"))
    const nixPaths = nix("nix-store", ["--store", store, "--add", ...paths]).split("\n")
    const ours = paths.map((path, i) => {
      const narHash = Result.getOrThrow(Hash.parse(nix("nix-hash", ["--type", "sha256", "--base32", path]), "sha256"))
      return StorePath.print(StorePath.makeFixedOutput("recursive", narHash, treeInputs[i]!.name, { storeDir }), storeDir)
    })
    expect(ours).toEqual(nixPaths)
  })

  it("builtins.toFile gives the same text paths, with and without references", () => {
    const arbText = fc.string({ unit: fc.oneof(fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }), fc.constantFrom("é", "😀", "\n", "\t", "\\", "\"", "$", "{")), maxLength: 200 }).map((s) => s.replaceAll("\0", ""))
    const inputs = unique(fc.sample(fc.record({ name: arbStoreName, text: arbText, refs: fc.integer({ min: 0, max: 3 }) }), { numRuns: 20, seed: seed + 2 }), (x) => x.name)
    const nixString = (s: string) => `"${s.replace(/[\\"$\n\r\t]/g, (c) => ({ "\\": "\\\\", "\"": "\\\"", "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t" })[c]!)}"`
    const deps = ["dep-a", "dep-b", "dep-c"].map((name) => ({ name, text: `contents of ${name}` }))
    const expr = `let deps = [ ${deps.map((d) => `(builtins.toFile ${nixString(d.name)} ${nixString(d.text)})`).join(" ")} ]; in [ ${inputs.map(({ name, text, refs }) =>
      `(builtins.toFile ${nixString(name)} (${nixString(text)}${deps.slice(0, refs).map((_, i) => ` + " " + builtins.elemAt deps ${i}`).join("")}))`).join(" ")} ]`
    const result = spawnSync("nix-instantiate", ["--readonly-mode", "--eval", "--strict", "--json", "-E", expr], {
      env: { ...nixEnv, NIX_STORE_DIR: storeDir }
    })
    expect(result.stderr.toString()).toBe("")
    const nixPaths = JSON.parse(result.stdout.toString()) as Array<string>
    const depPaths = deps.map((d) => StorePath.makeText(d.name, Hash.hashBytes("sha256", d.text), [], storeDir))
    const ours = inputs.map(({ name, text, refs }) => {
      const used = depPaths.slice(0, refs)
      const contents = text + used.map((p) => " " + StorePath.print(p, storeDir)).join("")
      return StorePath.print(StorePath.makeText(name, Hash.hashBytes("sha256", contents), used, storeDir), storeDir)
    })
    expect(ours).toEqual(nixPaths)
  })

  it("b3 store-path fixed and text print the paths Nix gives", () => {
    const dir = join(base, "cli")
    mkdirSync(join(dir, "t"), { recursive: true })
    const file = join(dir, "t", "greeting.txt")
    writeFileSync(file, "hello\n")
    const nixFixed = nix("nix-store", ["--store", store, "--add-fixed", "sha1", file])
    const sha1 = Hash.print(Hash.hashBytes("sha1", "hello\n"), "base16")
    expect(b3(["store-path", "fixed", "--store-dir", storeDir, "--name", "greeting.txt", sha1])).toBe(nixFixed)
    const nixAdded = nix("nix-store", ["--store", store, "--add", join(dir, "t")])
    const narHash = nix("nix", ["hash", "path", "--type", "sha256", "--sri", join(dir, "t")])
    expect(b3(["store-path", "fixed", "--store-dir", storeDir, "--recursive", "--name", "t", narHash])).toBe(nixAdded)
    const dep = JSON.parse(spawnSync("nix-instantiate", ["--readonly-mode", "--eval", "--json", "-E", `builtins.toFile "dep" "x"`],
      { env: { ...nixEnv, NIX_STORE_DIR: storeDir } }).stdout.toString()) as string
    const withRef = JSON.parse(spawnSync("nix-instantiate", ["--readonly-mode", "--eval", "--json", "-E", `builtins.toFile "t" "see \${builtins.toFile "dep" "x"}"`],
      { env: { ...nixEnv, NIX_STORE_DIR: storeDir } }).stdout.toString()) as string
    writeFileSync(join(dir, "text"), `see ${dep}`)
    expect(b3(["store-path", "text", "--store-dir", storeDir, "--name", "t", "--ref", dep, join(dir, "text")])).toBe(withRef)
  })
})
