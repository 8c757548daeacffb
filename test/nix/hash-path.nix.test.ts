/** `b3 hash path` against `nix hash path` / `nix-hash` on generated trees (issue 2's NAR hash conformance). */
import { afterAll, describe, expect, it } from "vitest"
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3 } from "../support/b3.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

/** Names whose UTF-8 byte order differs from JS (UTF-16) string order, plus the usual suspects. */
const makeTree = (root: string) => {
  mkdirSync(join(root, "nested/deeper/empty"), { recursive: true })
  for (const name of ["a", "B", "z", "é", "\u{FFFD}", "\u{1F600}", "\uE000", "x y", "-dash", "."+"hidden"]) {
    writeFileSync(join(root, name), `contents of ${name}\n`)
  }
  for (const size of [0, 1, 7, 8, 9, 4096, 70_001]) writeFileSync(join(root, "nested", `size-${size}`), Buffer.alloc(size, size & 0xff))
  writeFileSync(join(root, "nested/tool"), "#!/bin/sh\n")
  chmodSync(join(root, "nested/tool"), 0o755)
  symlinkSync("../a", join(root, "nested/relative"))
  symlinkSync("/absolute/target", join(root, "nested/absolute"))
  symlinkSync("dangling/é", join(root, "nested/deeper/dangling"))
  return root
}

describe("b3 hash path", () => {
  const tree = makeTree(join(scratch, "tree"))
  const file = join(scratch, "tree", "nested", "size-70001")
  const link = join(scratch, "tree", "nested", "relative")

  it("prints what nix hash path prints for a tree, a file and a symlink, in every encoding and algorithm", () => {
    const paths = [tree, file, link]
    for (const type of ["sha256", "sha1", "sha512"]) {
      for (const enc of ["--base16", "--base32", "--sri"]) {
        const expected = paths.map((p) => nix("nix", ["hash", "path", "--type", type, enc, p])).join("\n")
        expect(b3(["hash", "path", "--type", type, enc, ...paths])).toBe(expected)
      }
    }
    expect(b3(["hash", "path", "--base32", tree])).toBe(nix("nix-hash", ["--type", "sha256", "--base32", tree]))
  })
})
