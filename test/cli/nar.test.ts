/** `b3 nar dump|restore|ls|cat` and `b3 hash path` against nix-store --dump/--restore, nix nar ls/cat and nix-hash. */
import { spawnSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { b3Bin } from "../support/b3.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"
import { makeKitchenSink } from "../nar/support.ts"

const scratch = makeScratch("b3-cli-nar-")
afterAll(() => removeScratch(scratch))

/** Runs b3 with raw bytes in and out. */
const run = (args: ReadonlyArray<string>, input?: Uint8Array) => {
  const r = spawnSync(b3Bin, args, { input, maxBuffer: 1 << 30 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() }
}

const tree = makeKitchenSink(join(scratch, "tree"))
const nar = nixBytes("nix-store", ["--dump", tree])
const narFile = join(scratch, "tree.nar")
writeFileSync(narFile, nar)

describe("b3 nar", () => {
  it("dump writes exactly what nix-store --dump writes (a tree, a file, a symlink)", () => {
    for (const path of [tree, join(tree, "nested/big"), join(tree, "nested/absolute")]) {
      const r = run(["nar", "dump", path])
      expect(r.status).toBe(0)
      expect(r.stdout.equals(nixBytes("nix-store", ["--dump", path]))).toBe(true)
    }
  })

  it("restore unpacks a NAR from stdin into a tree Nix dumps back to the same bytes", () => {
    const target = join(scratch, "restored")
    const r = run(["nar", "restore", target], nar)
    expect(r.status).toBe(0)
    expect(nixBytes("nix-store", ["--dump", target]).equals(nar)).toBe(true)
    // never over an existing path
    const again = run(["nar", "restore", target], nar)
    expect(again.status).toBe(2)
    expect(again.stderr).toMatch(/already exists/)
  })

  it("restore from a file (1 MiB reads, big chunks written in the background from reused buffers) gives the same tree", () => {
    // 40 MiB of varied bytes (more reads than the ring has buffers), then small files after it
    const src = join(scratch, "big-tree")
    mkdirSync(join(src, "z"), { recursive: true })
    const big = Buffer.alloc(40 << 20)
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i)
    writeFileSync(join(src, "a-big"), big)
    for (let i = 0; i < 50; i++) writeFileSync(join(src, "z", `f${i}`), `small ${i}\n`.repeat(i))
    const file = join(scratch, "big-tree.nar")
    writeFileSync(file, nixBytes("nix-store", ["--dump", src]))
    const target = join(scratch, "big-restored")
    const r = spawnSync("sh", ["-c", `"$0" nar restore "$1" < "$2"`, b3Bin, target, file])
    expect(r.status).toBe(0)
    expect(nixBytes("nix-store", ["--dump", target]).equals(nixBytes("nix-store", ["--dump", src]))).toBe(true)
  })

  it("restore rejects a malformed NAR (exit 2, the byte offset in the message) and leaves nothing", () => {
    const parent = join(scratch, "bad-restore")
    mkdirSync(parent)
    const r = run(["nar", "restore", join(parent, "out")], nar.subarray(0, 5000))
    expect(r.status).toBe(2)
    expect(r.stderr).toBe("b3: bad NAR at byte 5000: truncated archive: expected the rest of file contents\n")
    expect(spawnSync("ls", ["-A", parent]).stdout.toString()).toBe("")
  })

  it("ls prints what nix nar ls prints, in text (-l, -R, -d) and JSON (with and without -R)", () => {
    const cases: Array<Array<string>> = [
      ["/"], ["-l", "/"], ["-R", "/"], ["-lR", "/"], ["-d", "/"], ["-l", "/nested"], ["-lR", "/nested/\u{1F600}"],
      ["-l", "/nested/relative"], ["/nested/tool"], ["-l", "/odd"],
      ["--json", "/"], ["--json", "-R", "/"], ["--json", "-R", "/nested"], ["--json", "/nested/big"], ["--json", "/nested/absolute"]
    ]
    for (const c of cases) {
      const flags = c.slice(0, -1), inside = c[c.length - 1]!
      const expected = nixBytes("nix", ["nar", "ls", ...flags, narFile, inside])
      const r = run(["nar", "ls", ...flags, narFile, inside])
      expect(r.status, c.join(" ")).toBe(0)
      // Nix ends its JSON without a newline; b3 adds one
      const ours = flags.includes("--json") ? r.stdout.subarray(0, -1) : r.stdout
      expect(ours.toString("latin1"), c.join(" ")).toBe(expected.toString("latin1"))
    }
  })

  it("ls and cat fail with exit 3 for a path that is not in the NAR, ls --json -d is a usage error", () => {
    expect(run(["nar", "ls", narFile, "/nope"]).status).toBe(3)
    expect(run(["nar", "cat", narFile, "/nested"]).status).toBe(3)
    expect(run(["nar", "ls", "--json", "-d", narFile, "/"]).status).toBe(2)
    expect(run(["nar", "ls", join(scratch, "missing.nar")]).status).toBe(3)
  })

  it("cat prints a file inside the NAR like nix nar cat", () => {
    for (const inside of ["/a", "/nested/big", "/nested/size-0", "/nested/\u{1F600}/inside"]) {
      const r = run(["nar", "cat", narFile, inside])
      expect(r.status).toBe(0)
      expect(r.stdout.equals(nixBytes("nix", ["nar", "cat", narFile, inside]))).toBe(true)
    }
  })

  it("dump and hash path refuse what a NAR cannot hold, and missing paths", () => {
    const fifo = join(scratch, "fifo-dir")
    mkdirSync(fifo)
    spawnSync("mkfifo", [join(fifo, "pipe")])
    for (const args of [["nar", "dump", fifo], ["hash", "path", fifo]]) {
      const r = run(args)
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(/it is a FIFO/)
    }
    expect(run(["nar", "dump", join(scratch, "does-not-exist")]).status).toBe(3)
    expect(run(["hash", "path", join(scratch, "does-not-exist")]).status).toBe(3)
  })

  it("hash path agrees with nix-hash on the tree and its parts", () => {
    const paths = [tree, join(tree, "nested/big"), join(tree, "odd")]
    const ours = run(["hash", "path", "--base16", ...paths]).stdout.toString().trim().split("\n")
    expect(ours).toEqual(paths.map((p) => nix("nix-hash", ["--type", "sha256", p])))
  })
})
