/**
 * `b3` with ipfs:// stores end to end, as a user runs it: `b3 copy --to ipfs://?repo=…` (signed),
 * `b3 ipfs root`, then `b3 copy --from ipfs://<root>?repo=…` into a local store with the signature
 * checked; a 384 MiB path goes both ways with b3's peak RSS under 400 MiB (it streams: b3 with Helia
 * loaded starts at about 110 MiB); bad URIs are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { closeSync, createReadStream, openSync, readFileSync, writeFileSync, writeSync } from "node:fs"
import { createHash, randomBytes } from "node:crypto"
import { join } from "node:path"
import { b3, runB3 } from "../support/b3.ts"
import { addClosureOver, makeCacheKey } from "../support/closure.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"
import { runB3Async } from "../support/s3-cli.ts"

const scratch = makeScratch("b3-ipfs-cli-")
const source = join(scratch, "source")
let sk: string
let pk: string
let big: string
let closure: { top: string; all: Array<string> }

const fillRandom = (file: string, mib: number) => {
  const fd = openSync(file, "w")
  try { for (let i = 0; i < mib; i++) writeSync(fd, randomBytes(1 << 20)) } finally { closeSync(fd) }
}
const dumpOf = (store: string, path: string) => nixBytes("nix", ["store", "dump-path", "--store", store, path])
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const sha256File = (file: string) => new Promise<string>((resolve, reject) => {
  const h = createHash("sha256")
  createReadStream(file).on("data", (d) => h.update(d)).on("end", () => resolve(h.digest("hex"))).on("error", reject)
})

beforeAll(async () => {
  ;({ secretKeyFile: sk, publicKey: pk } = makeCacheKey(scratch, "b3-ipfs-cli-1"))
  fillRandom(join(scratch, "big.bin"), 384)
  big = b3(["store", "add", "--store", source, join(scratch, "big.bin")])
  closure = await addClosureOver(source, big, "ipfs-cli")
}, 120_000)
afterAll(() => removeScratch(scratch))

describe("b3 copy with ipfs://", () => {
  it("copies a closure into an IPFS repo, prints its root, and copies it back out by root CID", async () => {
    const repo = join(scratch, "repo")
    const up = await runB3Async(["copy", "--from", source, "--to", `ipfs://?repo=${repo}&secret-key=${sk}`, "--closure", "--no-check-sigs", closure.top], process.env)
    expect({ status: up.status, stderr: up.stderr }).toEqual({ status: 0, stderr: expect.stringMatching(/^copied 3 path/) })

    const root = b3(["ipfs", "root", "--store", `ipfs://?repo=${repo}`])
    expect(root).toMatch(/^bafy[a-z2-7]+$/)
    expect(readFileSync(join(repo, "root"), "utf8").trim()).toBe(root)
    expect(JSON.parse(b3(["ipfs", "root", "--store", `ipfs://?repo=${repo}`, "--json"]))).toEqual({ store: `ipfs://?repo=${repo}`, root })

    const info = b3(["path-info", "--store", `ipfs://${root}?repo=${repo}`, "--json", big])
    expect(JSON.parse(info)[0]).toMatchObject({ path: big, signatures: [expect.stringMatching(/^b3-ipfs-cli-1:/)] })

    const target = join(scratch, "target")
    const down = await runB3Async(["copy", "--from", `ipfs://${root}?repo=${repo}`, "--to", target, "--closure", "--trusted-public-keys", pk, closure.top], process.env)
    expect({ status: down.status, stderr: down.stderr }).toEqual({ status: 0, stderr: expect.stringMatching(/^copied 3 path/) })
    for (const path of closure.all.filter((p) => p !== big)) expect(sha256(dumpOf(target, path))).toBe(sha256(dumpOf(source, path)))
    expect(await sha256File(join(target, big))).toBe(await sha256File(join(scratch, "big.bin")))
    nix("nix-store", ["--store", target, "--verify", "--check-contents"])

    console.log(`ipfs round trip of a 384 MiB path: peak RSS in ${Math.round(up.maxRssKiB / 1024)} MiB, out ${Math.round(down.maxRssKiB / 1024)} MiB`)
    // b3 with Helia loaded starts at about 110 MiB and the NAR streams through in 256 KiB leaves; the
    // rest is the local store's buffers and garbage not yet collected (about 180-300 MiB in all, the
    // same for a 100 MiB path). Holding the 384 MiB NAR would take it past 490 MiB.
    expect(up.maxRssKiB).toBeGreaterThan(0)
    expect(up.maxRssKiB).toBeLessThan(400 * 1024)
    expect(down.maxRssKiB).toBeGreaterThan(0)
    expect(down.maxRssKiB).toBeLessThan(400 * 1024)

    // an untrusted key: refused (exit 4), nothing copied
    const refused = runB3(["copy", "--from", `ipfs://${root}?repo=${repo}`, "--to", join(scratch, "target-2"), "--closure", closure.top])
    expect(refused.status).toBe(4)
    expect(refused.stderr).toMatch(/signature/)
    expect(runB3(["path-info", "--store", join(scratch, "target-2"), closure.top]).status).toBe(3)

    // the root opened by CID is read-only
    const readOnly = runB3(["copy", "--from", source, "--to", `ipfs://${root}?repo=${repo}`, "--no-check-sigs", big])
    expect(readOnly.status).not.toBe(0)
    expect(readOnly.stderr).toMatch(/read-only/)
  }, 180_000)

  it("refuses bad ipfs:// URIs and a second writer on the same repo", () => {
    const bad = runB3(["ipfs", "root", "--store", "ipfs://?repo=/tmp/x&peer=/ip4/192.168.1.1/tcp/4001"])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/loopback/)
    expect(runB3(["ipfs", "root", "--store", "local"]).status).toBe(2)
    const repo = join(scratch, "locked")
    b3(["ipfs", "root", "--store", `ipfs://?repo=${repo}`])
    const lock = join(repo, "lock")
    // a lock held by a live process (this one) keeps a second writer out
    writeFileSync(lock, `${process.pid}\n`)
    const locked = runB3(["ipfs", "root", "--store", `ipfs://?repo=${repo}`])
    expect(locked.status).not.toBe(0)
    expect(locked.stderr).toMatch(/in use by process/)
    // a stale one (its process is gone) is taken over
    writeFileSync(lock, "999999999\n")
    expect(runB3(["ipfs", "root", "--store", `ipfs://?repo=${repo}`]).status).toBe(0)
  })
})
