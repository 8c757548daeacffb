/**
 * S3 caches against real Nix 2.8, both ways. Debian's Nix has no s3:// support, so it uses the
 * bucket's path-style URL on the S3 server as a plain http:// binary cache: it reads (with
 * signature checking) what b3 wrote through s3://, and it PUTs a cache that b3 then reads
 * through s3://.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3 } from "../support/b3.ts"
import { addClosureOver, makeCacheKey, writeToolTree } from "../support/closure.ts"
import { makeScratch, nixBytes, nixEnv, removeScratch } from "../support/nix.ts"
import { runB3Async, s3Env } from "../support/s3-cli.ts"
import { startS3Server, type S3TestServer } from "../support/s3-server.ts"
import { spawn } from "node:child_process"

const scratch = makeScratch("b3-s3-nix-")
const source = join(scratch, "source")
const env = s3Env(scratch)
let server: S3TestServer
let sk: string
let pk: string
let tree: string
let top: string
let closure: Array<string>

/** Runs a Nix command without blocking the event loop (the test's S3 proxy runs in this process). */
const nixAsync = (command: string, args: ReadonlyArray<string>) => new Promise<string>((resolve, reject) => {
  const child = spawn(command, args, { env: nixEnv, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  let err = ""
  child.stdout.on("data", (d: Buffer) => { out += d.toString() })
  child.stderr.on("data", (d: Buffer) => { err += d.toString() })
  child.on("close", (code) => code === 0 ? resolve(out.trim()) : reject(new Error(`${command} ${args.join(" ")} failed (${code}): ${err}`)))
})

const dumpOf = (root: string, path: string) => nixBytes("nix", ["store", "dump-path", "--store", root, path])

beforeAll(async () => {
  server = await startS3Server(join(scratch, "s3"))
  ;({ secretKeyFile: sk, publicKey: pk } = makeCacheKey(scratch, "b3-s3-nix-1"))
  tree = b3(["store", "add", "--store", source, writeToolTree(join(scratch, "tree"))])
  ;({ top, all: closure } = await addClosureOver(source, tree, "tree"))
}, 60_000)

afterAll(async () => {
  await server?.close()
  removeScratch(scratch)
})

describe("s3:// caches ↔ Nix (through the bucket's http:// URL)", () => {
  it("nix copy reads and verifies a signed cache b3 wrote through s3://", async () => {
    const up = await runB3Async(["copy", "--from", source, "--to", server.storeUri("b3-wrote", { "secret-key": sk }), "--closure", "--no-check-sigs", top], env)
    expect({ status: up.status, stderr: up.stderr }).toEqual({ status: 0, stderr: expect.stringMatching(/^copied 3 path/) })
    const target = join(scratch, "nix-target")
    // signature checking is on: the input-addressed path needs b3's signature
    await nixAsync("nix", ["copy", "--from", `${server.directUrl()}/b3-wrote`, "--to", target, "--option", "trusted-public-keys", pk, top])
    for (const path of closure) expect(dumpOf(target, path).equals(dumpOf(source, path))).toBe(true)
    await nixAsync("nix-store", ["--store", target, "--verify", "--check-contents"])
    // and without the key Nix refuses it
    await expect(nixAsync("nix", ["copy", "--from", `${server.directUrl()}/b3-wrote`, "--to", join(scratch, "nix-target-2"), "--option", "trusted-public-keys", "", top]))
      .rejects.toThrow(/signature/)
  }, 60_000)

  it("b3 reads through s3:// a signed cache Nix PUT into the bucket", async () => {
    expect((await fetch(`${server.directUrl()}/nix-wrote`, { method: "PUT" })).status).toBe(200) // create the bucket
    await nixAsync("nix", ["copy", "--from", source, "--to", `${server.directUrl()}/nix-wrote?secret-key=${sk}&compression=xz`, "--no-check-sigs", top])
    const target = join(scratch, "b3-target")
    const down = await runB3Async(["copy", "--from", server.storeUri("nix-wrote", { "read-only": "true" }), "--to", target, "--closure", "--trusted-public-keys", pk, top], env)
    expect({ status: down.status, stderr: down.stderr }).toEqual({ status: 0, stderr: expect.stringMatching(/^copied 3 path/) })
    for (const path of closure) expect(dumpOf(target, path).equals(dumpOf(source, path))).toBe(true)
    // untrusted: refused (exit 4), nothing added
    const refused = await runB3Async(["copy", "--from", server.storeUri("nix-wrote", { "read-only": "true" }), "--to", join(scratch, "b3-target-2"), top], env)
    expect(refused.status).toBe(4)
    expect(refused.stderr).toMatch(/signature/)
  }, 60_000)
})
