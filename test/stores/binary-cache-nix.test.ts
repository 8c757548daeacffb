/**
 * Binary caches against real Nix, both ways: caches b3 writes (every compression, signed) are
 * read by `nix copy`; caches Nix writes are read and verified by b3; `b3 serve` serves Nix; and
 * bad caches (tampered NAR, wrong hashes, bad or missing signatures) are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn, type ChildProcess } from "node:child_process"
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { randomBytes } from "node:crypto"
import { createInterface } from "node:readline"
import { zstdDecompressSync } from "node:zlib"
import * as StorePath from "../../src/core/store-path.ts"
import { b3, b3Bin, runB3 } from "../support/b3.ts"
import { signedToolClosure } from "../support/closure.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
const source = join(scratch, "source-store")
let closure: { top: string; all: Array<string> }
let sk: string
let pk: string

beforeAll(async () => {
  ({ closure, sk, pk } = await signedToolClosure(scratch, source, "b3-test-1"))
})
afterAll(() => removeScratch(scratch))

const dumpOf = (root: string, path: string) => nixBytes("nix", ["store", "dump-path", "--store", root, path])

describe("binary caches ↔ Nix", () => {
  it.each(["none", "xz", "zstd", "bzip2"])("nix copy reads a signed cache b3 wrote (compression %s)", (compression) => {
    const cache = join(scratch, `cache-${compression}`)
    b3(["copy", "--from", source, "--to", `file://${cache}?compression=${compression}&secret-key=${sk}`, "--closure", "--no-check-sigs", closure.top])
    expect(readdirSync(join(cache, "nar")).length).toBe(3)
    const target = join(scratch, `nix-target-${compression}`)
    nix("nix", ["copy", "--from", `file://${cache}`, "--to", target, "--option", "trusted-public-keys", pk, closure.top])
    for (const path of closure.all) expect(dumpOf(target, path).equals(dumpOf(source, path))).toBe(true)
    nix("nix-store", ["--store", target, "--verify", "--check-contents"])
  })

  it("write-nar-listing writes the same <hash>.ls files as Nix", () => {
    const nixCache = join(scratch, "ls-nix")
    const b3Cache = join(scratch, "ls-b3")
    nix("nix", ["copy", "--from", source, "--to", `file://${nixCache}?write-nar-listing=true&compression=xz`, "--no-check-sigs", closure.top])
    b3(["copy", "--from", source, "--to", `file://${b3Cache}?write-nar-listing=1`, "--closure", "--no-check-sigs", closure.top])
    const listings = readdirSync(nixCache).filter((name) => name.endsWith(".ls")).sort()
    expect(listings.length).toBe(closure.all.length)
    expect(readdirSync(b3Cache).filter((name) => name.endsWith(".ls")).sort()).toEqual(listings)
    for (const name of listings) expect(readFileSync(join(b3Cache, name)).equals(readFileSync(join(nixCache, name)))).toBe(true)
  })

  it("b3 reads and verifies a cache Nix wrote (xz, signed)", () => {
    const nixRoot = join(scratch, "nix-source")
    const tree = join(scratch, "tree")
    const added = nix("nix-store", ["--store", nixRoot, "--add", tree])
    const cache = join(scratch, "nix-cache")
    nix("nix", ["copy", "--from", nixRoot, "--to", `file://${cache}?compression=xz&secret-key=${sk}`, added])
    const target = join(scratch, "b3-target")
    // signed by a trusted key
    b3(["copy", "--from", `file://${cache}`, "--to", target, "--trusted-public-keys", pk, added])
    expect(dumpOf(target, added).equals(dumpOf(nixRoot, added))).toBe(true)
    // content-addressed, so acceptable without a trusted key too (as for Nix), with its contents checked
    const unsignedTarget = join(scratch, "b3-target-2")
    b3(["copy", "--from", `file://${cache}`, "--to", unsignedTarget, added])
    expect(b3(["path-info", "--store", unsignedTarget, added])).toBe(added)
  })

  it("b3 serve is a cache nix copy can use, with signatures checked", async () => {
    const child = spawn(b3Bin, ["serve", "--store", source, "--listen", "127.0.0.1:0", "--secret-key", sk, "--quiet"], { stdio: ["ignore", "pipe", "pipe"] })
    try {
      const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once("line", resolve))
      const url = /at (http:\/\/\S+)/.exec(line)![1]!
      const target = join(scratch, "served-target")
      nix("nix", ["copy", "--from", url, "--to", target, "--option", "trusted-public-keys", pk, closure.top])
      for (const path of closure.all) expect(dumpOf(target, path).equals(dumpOf(source, path))).toBe(true)
      // and b3 reads it too, over HTTP, with signature checking
      const b3Target = join(scratch, "served-b3-target")
      b3(["copy", "--from", url, "--to", b3Target, "--closure", "--trusted-public-keys", pk, closure.top])
      expect(b3(["path-info", "--store", b3Target, "--closure", closure.top]).split("\n").sort()).toEqual(closure.all)
      // requests that try to leave the cache's name space get 4xx
      for (const bad of ["/../etc/passwd", "/nar/..%2f..%2fetc%2fpasswd", "/%2e%2e/x.narinfo", "/nix/store"]) {
        const res = await fetch(url + bad)
        expect(res.status).toBeGreaterThanOrEqual(400)
        expect(res.status).toBeLessThan(500)
      }
    } finally {
      await stop(child)
    }
  })

  it("b3 serve --compression zstd makes zstd NARs on the fly that decompress to the exact NAR, and nix copy reads them", async () => {
    // a path of several MiB (many read chunks and compressor buffers) beside the small closure
    const big = join(scratch, "zstd-big")
    mkdirSync(big)
    writeFileSync(join(big, "random"), randomBytes(3 << 20))
    writeFileSync(join(big, "text"), Array.from({ length: 200_000 }, (_, i) => `line ${i} of some compressible text\n`).join(""))
    const bigPath = b3(["store", "add", "--store", source, big])
    const child = spawn(b3Bin, ["serve", "--store", source, "--listen", "127.0.0.1:0", "--compression", "zstd", "--secret-key", sk, "--quiet"], { stdio: ["ignore", "pipe", "pipe"] })
    try {
      const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once("line", resolve))
      const url = /at (http:\/\/\S+)/.exec(line)![1]!
      for (const path of [...closure.all, bigPath]) {
        const field = (text: string, name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(text)?.[1]
        const narinfo = await (await fetch(`${url}/${path.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`)).text()
        expect(field(narinfo, "Compression")).toBe("zstd")
        const body = Buffer.from(await (await fetch(`${url}/${field(narinfo, "URL")}`)).arrayBuffer())
        expect(zstdDecompressSync(body).equals(dumpOf(source, path))).toBe(true)
      }
      const target = join(scratch, "served-zstd-target")
      nix("nix", ["copy", "--from", url, "--to", target, "--option", "trusted-public-keys", pk, closure.top, bigPath])
      for (const path of [...closure.all, bigPath]) expect(dumpOf(target, path).equals(dumpOf(source, path))).toBe(true)
    } finally {
      await stop(child)
    }
  })

  it("b3 serve passes a cache's NAR files through unchanged: Nix's xz cache, Nix's signatures, Range", async () => {
    const nixRoot = join(scratch, "nix-source-served")
    const added = nix("nix-store", ["--store", nixRoot, "--add", join(scratch, "tree")])
    const cache = join(scratch, "nix-cache-served")
    nix("nix", ["copy", "--from", nixRoot, "--to", `file://${cache}?compression=xz&secret-key=${sk}`, added])
    const hashPart = added.slice("/nix/store/".length, "/nix/store/".length + 32)
    const stored = readFileSync(join(cache, `${hashPart}.narinfo`), "utf8")
    const field = (text: string, name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(text)?.[1]
    const child = spawn(b3Bin, ["serve", "--store", `file://${cache}`, "--listen", "127.0.0.1:0", "--quiet"], { stdio: ["ignore", "pipe", "pipe"] })
    try {
      const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once("line", resolve))
      const url = /at (http:\/\/\S+)/.exec(line)![1]!
      const served = await (await fetch(`${url}/${hashPart}.narinfo`)).text()
      // the file as the cache keeps it: same compression, FileHash, FileSize and Nix's own signature
      for (const name of ["Compression", "FileHash", "FileSize", "NarHash", "Sig"]) expect(field(served, name)).toBe(field(stored, name))
      const file = readFileSync(join(cache, field(stored, "URL")!))
      const body = Buffer.from(await (await fetch(`${url}/${field(served, "URL")}`)).arrayBuffer())
      expect(body.equals(file)).toBe(true)
      const part = await fetch(`${url}/${field(served, "URL")}`, { headers: { range: "bytes=10-99" } })
      expect(part.status).toBe(206)
      expect(Buffer.from(await part.arrayBuffer()).equals(file.subarray(10, 100))).toBe(true)
      // the plain NAR is still there, decompressed and checked on the fly
      const plain = Buffer.from(await (await fetch(`${url}/nar/${hashPart}.nar`)).arrayBuffer())
      expect(plain.equals(dumpOf(nixRoot, added))).toBe(true)
      const target = join(scratch, "served-nix-cache-target")
      nix("nix", ["copy", "--from", url, "--to", target, "--option", "trusted-public-keys", pk, added])
      expect(dumpOf(target, added).equals(dumpOf(nixRoot, added))).toBe(true)
    } finally {
      await stop(child)
    }
  })

  it("refuses tampered caches: bad NAR bytes, wrong NarHash, missing or bad signatures", () => {
    const cache = join(scratch, "tamper")
    b3(["copy", "--from", source, "--to", `file://${cache}?compression=none&secret-key=${sk}`, "--closure", "--no-check-sigs", closure.top])
    const hashPart = StorePath.parse(closure.top)
    if (hashPart._tag !== "Success") throw new Error("bad path")
    const narinfoFile = join(cache, `${hashPart.success.hashPart}.narinfo`)
    const original = readFileSync(narinfoFile, "utf8")
    const narFile = join(cache, /URL: (\S+)/.exec(original)![1]!)
    const narOriginal = readFileSync(narFile)
    const tryCopy = (extra: ReadonlyArray<string> = []) => runB3(["copy", "--closure", "--from", `file://${cache}`, "--to", join(scratch, `t-${Math.random()}`), "--trusted-public-keys", pk, ...extra, closure.top])

    // untrusted key
    const untrusted = runB3(["copy", "--closure", "--from", `file://${cache}`, "--to", join(scratch, "t-untrusted"), closure.top])
    expect(untrusted.stderr).toMatch(/signature/)
    expect(untrusted.status).toBe(4)
    expect(untrusted.stderr).toMatch(/signature/)
    // tampered signature / field
    writeFileSync(narinfoFile, original.replace(/NarSize: (\d+)/, (_, n) => `NarSize: ${Number(n) + 8}`))
    expect(tryCopy().status).toBe(4)
    writeFileSync(narinfoFile, original.replace(/^Sig: .*\n/m, ""))
    expect(tryCopy().status).toBe(4)
    writeFileSync(narinfoFile, original)
    // corrupted NAR bytes: caught by the NAR hash check, nothing enters the target
    const corrupted = Buffer.from(narOriginal)
    // a byte of file contents (not of the NAR's structure, which would be a BadNar instead)
    const at = corrupted.indexOf("-uses-tree") - 1
    corrupted[at] = corrupted[at] === 0x30 ? 0x31 : 0x30 // another nix-base32 digit
    writeFileSync(narFile, corrupted)
    const target = join(scratch, "t-corrupt")
    const bad = runB3(["copy", "--closure", "--from", `file://${cache}`, "--to", target, "--trusted-public-keys", pk, closure.top])
    expect(bad.status).toBe(4)
    expect(bad.stderr).toMatch(/NAR hash mismatch/)
    expect(runB3(["path-info", "--store", target, closure.top]).status).toBe(3)
    // truncated NAR
    writeFileSync(narFile, narOriginal.subarray(0, narOriginal.length - 100))
    expect(tryCopy().status).not.toBe(0)
    writeFileSync(narFile, narOriginal)
    expect(tryCopy().status).toBe(0)
  })
})

const stop = (child: ChildProcess) => new Promise<void>((resolve) => {
  if (child.exitCode !== null) return resolve()
  child.on("exit", () => resolve())
  child.kill("SIGTERM")
})
