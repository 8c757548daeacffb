/**
 * Crash safety and concurrency of the local store, with real processes: `b3 store add` killed
 * with SIGKILL at random moments, and 8 processes adding the same and overlapping paths at once.
 * Afterwards the store must be consistent: every valid path has exactly its contents, no
 * temporary trees are left, and the next add succeeds.
 */
import { afterAll, describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { mkdirSync, readdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3, b3Bin, runB3 } from "../support/b3.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

const bigTree = (dir: string, files: number, fileSize: number) => {
  mkdirSync(dir, { recursive: true })
  for (let i = 0; i < files; i++) {
    const data = Buffer.alloc(fileSize)
    for (let j = 0; j < fileSize; j += 4096) data[j] = (i * 31 + j) & 0xff
    writeFileSync(join(dir, `f${i}`), data)
  }
  return dir
}

const run = (args: ReadonlyArray<string>) => new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
  const child = spawn(b3Bin, args, { stdio: "ignore" })
  child.on("exit", (code, signal) => resolve({ code, signal }))
})

const killAfter = (args: ReadonlyArray<string>, ms: number) => new Promise<void>((resolve) => {
  const child = spawn(b3Bin, args, { stdio: "ignore", detached: true })
  const timer = setTimeout(() => { try { process.kill(-child.pid!, "SIGKILL") } catch { /* already gone */ } }, ms)
  child.on("exit", () => { clearTimeout(timer); resolve() })
})

const temporaries = (root: string) => readdirSync(join(root, "nix/store")).filter((n) => n.startsWith(".b3-tmp-"))

describe("local store robustness", () => {
  // A tree goes through the NAR restore; a single file through the overlapped copy (copy-file.ts).
  it.each([
    ["a tree", () => bigTree(join(scratch, "crash-src", "payload"), 40, 1 << 20)],
    ["one big file", () => join(bigTree(join(scratch, "crash-src-file"), 1, 48 << 20), "f0")]
  ])("survives SIGKILL at random moments of an add of %s", async (what, makeSource) => {
    const root = join(scratch, `crash-${what.replaceAll(" ", "-")}`)
    const src = makeSource()
    const expected = nix("nix-store", ["--store", join(scratch, `crash-nix-${what.replaceAll(" ", "-")}`), "--add", src])
    b3(["store", "verify", "--store", root]) // create the store
    for (let i = 0; i < 8; i++) {
      await killAfter(["store", "add", "--store", root, src], 150 + Math.floor(Math.random() * 1500))
      // opening the store recovers it; verification re-hashes every valid path
      const verify = runB3(["store", "verify", "--store", root])
      expect(verify.stderr).toBe("")
      expect(verify.status).toBe(0)
      expect(temporaries(root)).toEqual([])
      const valid = runB3(["path-info", "--store", root, expected])
      if (valid.status === 0) break // an add completed before the kill: it must be intact (verified above)
    }
    expect(b3(["store", "add", "--store", root, src])).toBe(expected)
    expect(b3(["store", "verify", "--store", root])).toMatch(/0 problem/)
    nix("nix-store", ["--store", root, "--verify", "--check-contents"])
  })

  it("8 concurrent adders of the same and overlapping paths make one valid copy each", async () => {
    const root = join(scratch, "conc")
    const shared = bigTree(join(scratch, "conc-src", "shared"), 20, 100_000)
    const own = Array.from({ length: 8 }, (_, i) => bigTree(join(scratch, "conc-src", `own${i % 4}`), 5, 10_000 + i))
    b3(["store", "verify", "--store", root])
    const results = await Promise.all(own.map((mine) => run(["store", "add", "--store", root, shared, mine])))
    expect(results.every((r) => r.code === 0)).toBe(true)
    const lines = b3(["path-info", "--store", root, "--json", ...[shared, ...own.slice(0, 4)].map((p) => nix("nix-store", ["--store", join(scratch, "conc-nix"), "--add", p]))])
    expect((JSON.parse(lines) as Array<unknown>).length).toBe(5)
    expect(temporaries(root)).toEqual([])
    expect(readdirSync(join(root, "nix/store")).filter((n) => !n.startsWith(".")).length).toBe(5)
    expect(b3(["store", "verify", "--store", root])).toMatch(/checked 5 paths, 0 problem/)
    nix("nix-store", ["--store", root, "--verify", "--check-contents"])
  })
})
