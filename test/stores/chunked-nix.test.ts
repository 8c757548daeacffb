/**
 * The chunk store against real Nix and through the CLI: `b3 serve` over a chunked+file store
 * serves ordinary narinfo + NAR (plain, and zstd made of the stored frames) that `nix copy` reads
 * with signatures checked; a static HTTP server over the store's directory is a chunked+http store
 * b3 copies from; `b3 store delete|gc|repack|stats` on it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn, type ChildProcess } from "node:child_process"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { b3, b3Bin, runB3 } from "../support/b3.ts"
import { signedToolClosure } from "../support/closure.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"

const scratch = makeScratch("b3-chunked-nix-")
const source = join(scratch, "source-store")
const chunks = join(scratch, "chunks")
let closure: { top: string; all: Array<string> }
let sk: string
let pk: string

beforeAll(async () => {
  ({ closure, sk, pk } = await signedToolClosure(scratch, source, "b3-chunks-1"))
  b3(["copy", "--from", source, "--to", `chunked+file://${chunks}?secret-key=${sk}`, "--closure", "--no-check-sigs", closure.top])
})
afterAll(() => removeScratch(scratch))

const dumpOf = (root: string, path: string) => nixBytes("nix", ["store", "dump-path", "--store", root, path])

const stop = (child: ChildProcess) => new Promise<void>((resolve) => {
  if (child.exitCode !== null) return resolve()
  child.once("exit", () => resolve())
  child.kill("SIGTERM")
})

/** Starts a server command and resolves with its first stdout line matching `ready`. */
const start = (command: string, args: ReadonlyArray<string>, ready: RegExp) => {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "ignore"] })
  const match = new Promise<RegExpExecArray>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.on("line", (line) => { const m = ready.exec(line); if (m) resolve(m) })
    child.once("exit", (code) => reject(new Error(`${command} exited with ${code}`)))
  })
  return { child, match }
}

const serve = async (compression: string, run: (url: string) => Promise<void> | void) => {
  const { child, match } = start(b3Bin, ["serve", "--store", `chunked+file://${chunks}`, "--listen", "127.0.0.1:0", "--compression", compression, "--quiet"], /at (http:\/\/\S+)/)
  try {
    await run((await match)[1]!)
  } finally {
    await stop(child)
  }
}

describe("chunk store ↔ Nix", () => {
  it.each(["none", "zstd"])("nix copy reads b3 serve over a chunked store, checking signatures (%s)", async (compression) => {
    await serve(compression, async (url) => {
      const narinfo = await (await fetch(`${url}/${closure.top.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`)).text()
      expect(narinfo).toMatch(new RegExp(`Compression: ${compression}\\n`))
      expect(narinfo).toMatch(/Sig: b3-chunks-1:/)
      const target = join(scratch, `nix-target-${compression}`)
      nix("nix", ["copy", "--from", url, "--to", target, "--option", "trusted-public-keys", pk, closure.top])
      for (const path of closure.all) expect(dumpOf(target, path).equals(dumpOf(source, path))).toBe(true)
      nix("nix-store", ["--store", target, "--verify", "--check-contents"])
      // without the key, Nix refuses the input-addressed path
      expect(() => nix("nix", ["copy", "--from", url, "--to", join(scratch, `nix-untrusted-${compression}`), "--option", "trusted-public-keys", "", closure.top])).toThrow(/signature/)
    })
  })

  it("a static HTTP server over the store's directory is a chunked+http store b3 copies from, checking signatures", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000)
    const { child, match } = start("python3", ["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", chunks, String(port)], /port (\d+)/)
    try {
      await match
      const target = join(scratch, "b3-from-http")
      b3(["copy", "--from", `chunked+http://127.0.0.1:${port}`, "--to", target, "--closure", "--trusted-public-keys", pk, closure.top])
      for (const path of closure.all) expect(dumpOf(target, path).equals(dumpOf(source, path))).toBe(true)
      // read-only over HTTP
      const write = runB3(["store", "add", "--store", `chunked+http://127.0.0.1:${port}`, join(scratch, "tree")])
      expect(write.status).toBe(2)
    } finally {
      await stop(child)
    }
  })

  it("b3 store delete, gc, repack --dry-run and stats", () => {
    const store = `chunked+file://${join(scratch, "cli-chunks")}?pack-size=0.0625`
    const added = b3(["store", "add", "--store", store, join(scratch, "tree"), join(scratch, "source-store")]).split("\n")
    expect(added).toHaveLength(2)
    const before = JSON.parse(b3(["--json", "store", "stats", "--store", store]))
    expect(before.paths).toBe(2)
    expect(before.liveFraction).toBe(1)
    expect(b3(["store", "delete", "--store", store, added[1]!])).toBe(`deleted ${added[1]}`)
    const dry = JSON.parse(b3(["--json", "store", "gc", "--dry-run", "--store", store]))
    expect(dry.bytesFreed).toBeGreaterThan(0)
    const gc = JSON.parse(b3(["--json", "store", "gc", "--store", store]))
    expect(gc.bytesFreed).toBe(dry.bytesFreed)
    expect(b3(["store", "repack", "--dry-run", "--store", store])).toMatch(/^would rewrite 0 pack\(s\) .* 0\.0 MiB would be freed \(0 bytes\)$/)
    const after = JSON.parse(b3(["--json", "store", "stats", "--store", store]))
    expect(after.paths).toBe(1)
    expect(after.packBytes).toBe(before.packBytes - gc.bytesFreed)
    expect(b3(["store", "verify", "--store", store])).toBe("checked 1 paths, 0 problem(s)")
    // stats on a store that has none
    expect(runB3(["store", "stats", "--store", source]).status).toBe(2)
  })
})
