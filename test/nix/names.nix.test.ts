/**
 * Store path names at the edges of Nix 2.8's rules (`checkName`: non-empty, at most 211 characters
 * of A-Z a-z 0-9 + - . _ ? =; a leading period is fine, so are `.` and `..`), as a table: each
 * name's fate under `builtins.toFile` and `nix-store --add` against b3's. Then b3 reads the store
 * Nix wrote such paths into, and a binary cache whose narinfos reference them.
 */
import { afterAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Result } from "effect"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { b3 } from "../support/b3.ts"
import { makeScratch, nix, nixEnv, removeScratch } from "../support/nix.ts"

const scratch = makeScratch("b3-names-")
afterAll(() => removeScratch(scratch))

/** name, whether Nix 2.8 accepts it, and whether it can be a file's base name (for `nix-store --add`). */
const names: ReadonlyArray<readonly [name: string, valid: boolean]> = [
  [".gitignore", true],
  ["...", true],
  ["...a", true],
  [".", true],
  ["..", true],
  [".-x", true],
  ["-x", true],
  ["?x", true],
  ["=", true],
  ["a.", true],
  ["+-._?=", true],
  [".drv", true],
  ["x".repeat(211), true],
  [`.${"x".repeat(210)}`, true],
  ["x".repeat(212), false],
  ["", false],
  ["a b", false],
  ["é", false],
  ["a/b", false],
  ["a:b", false],
  ["a@b", false],
  ["~x", false],
  ["a\tb", false]
]

const nixString = (s: string) => `"${s.replace(/[\\"$\n\r\t]/g, (c) => ({ "\\": "\\\\", "\"": "\\\"", "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t" })[c]!)}"`
const contents = (name: string) => `contents of ${name}\n`

describe("store path names: b3 against Nix 2.8", () => {
  it.each(names)("builtins.toFile %j: same verdict and path", (name, valid) => {
    const r = spawnSync("nix-instantiate", ["--readonly-mode", "--eval", "--json", "-E", `builtins.toFile ${nixString(name)} ${nixString(contents(name))}`], { env: nixEnv })
    expect(r.status === 0, r.stderr.toString()).toBe(valid)
    const ours = StorePath.validateName(name)
    expect(Result.isSuccess(ours)).toBe(valid)
    if (!valid) {
      expect(r.stderr.toString()).toMatch(/illegal character|empty name|longer than 211/)
      return
    }
    const path = StorePath.print(StorePath.makeText(name, Hash.hashBytes("sha256", contents(name))))
    expect(JSON.parse(r.stdout.toString())).toBe(path)
    expect(Result.isSuccess(StorePath.parse(path))).toBe(true)
  })

  // `.` and `..` cannot be a file's base name, nor can a name with `/`; and `nix-store --add` of a
  // file named `.drv` tries to parse it as a derivation (a valid name, but not for this command).
  const addable = names.filter(([name]) => name !== "." && name !== ".." && name !== "" && name !== ".drv" && !name.includes("/"))
  const root = join(scratch, "store")
  const files = join(scratch, "files")
  let added: Array<{ name: string; valid: boolean; path: string | undefined }> = []

  it("nix-store --add: same verdicts and paths, and b3 reads that store", () => {
    added = addable.map(([name, valid], i) => {
      const dir = join(files, String(i))
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(dir, name), contents(name))
      const r = spawnSync("nix-store", ["--store", root, "--add", join(dir, name)], { env: nixEnv })
      expect(r.status === 0, `${name}: ${r.stderr.toString()}`).toBe(valid)
      if (!valid) return { name, valid, path: undefined }
      const narHash = Result.getOrThrow(Hash.parse(nix("nix-hash", ["--type", "sha256", "--base32", join(dir, name)]), "sha256"))
      const path = StorePath.print(StorePath.makeFixedOutput("recursive", narHash, name))
      expect(r.stdout.toString().trim(), name).toBe(path)
      return { name, valid, path }
    })
    const paths = added.flatMap((a) => a.path === undefined ? [] : [a.path])
    expect(paths.length).toBeGreaterThan(10)
    const ours = JSON.parse(b3(["--json", "path-info", "--store", root, ...paths])) as Array<{ path: string; narHash: string }>
    const theirs = JSON.parse(nix("nix", ["path-info", "--json", "--store", root, ...paths])) as Array<{ path: string; narHash: string }>
    expect(ours.map((i) => [i.path, i.narHash])).toEqual(theirs.map((i) => [i.path, Result.getOrThrow(Hash.parse(i.narHash)) && i.narHash]))
  })

  it("a binary cache Nix wrote, whose narinfos reference such paths: b3 reads it and copies the closure to a store Nix reads", () => {
    const paths = added.flatMap((a) => a.path === undefined ? [] : [a.path])
    // A text path that references every one of them (its narinfo lists them all in References).
    const expr = `builtins.toFile "refs" (builtins.concatStringsSep "\\n" (map builtins.storePath [ ${paths.map(nixString).join(" ")} ]))`
    const refs = nix("nix", ["eval", "--impure", "--store", root, "--raw", "--expr", expr])
    const cache = join(scratch, "cache")
    nix("nix", ["copy", "--from", root, "--to", `file://${cache}?compression=none`, refs])
    const closure = b3(["path-info", "--closure", "--store", `file://${cache}`, refs]).split("\n")
    expect(closure).toEqual([...paths, refs].sort((a, b) => StorePath.compare(Result.getOrThrow(StorePath.parse(a)), Result.getOrThrow(StorePath.parse(b)))))
    const target = join(scratch, "b3-store")
    b3(["copy", "--from", `file://${cache}`, "--to", target, "--closure", refs])
    const references = nix("nix-store", ["--store", target, "--query", "--references", refs]).split("\n").sort()
    expect(references).toEqual([...paths].sort())
    nix("nix-store", ["--store", target, "--verify", "--check-contents"])
  })
})
