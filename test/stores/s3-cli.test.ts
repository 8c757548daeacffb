/**
 * `b3 copy` to and from `s3://` end to end, against s3rver behind a fault-injecting proxy:
 * a closure with a 200 MiB path round-trips byte for byte with b3's peak RSS within 100 MiB of a
 * 24 MiB path's (memory flat in the NAR size); and
 * under faults (a 503 SlowDown burst, s3rver killed mid-upload, b3 interrupted mid-upload,
 * downloads cut short) every operation retries or fails cleanly: no narinfo points at a missing or
 * partial NAR, no multipart upload is left open, no partial path lands in the target store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { closeSync, createReadStream, openSync, writeSync } from "node:fs"
import { randomBytes, createHash } from "node:crypto"
import { join } from "node:path"
import * as StorePath from "../../src/core/store-path.ts"
import { b3 } from "../support/b3.ts"
import { addClosureOver, makeCacheKey } from "../support/closure.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"
import { danglingNarInfos, runB3Async, s3Env, startB3 } from "../support/s3-cli.ts"
import { startS3Server, type S3TestServer } from "../support/s3-server.ts"

const scratch = makeScratch("b3-s3-cli-")
const source = join(scratch, "source")
const env = s3Env(scratch)
let server: S3TestServer
let sk: string
let pk: string
let big: string
let mid: string
let top: string
let closure: Array<string>

const fillRandom = (file: string, mib: number) => {
  const fd = openSync(file, "w")
  try { for (let i = 0; i < mib; i++) writeSync(fd, randomBytes(1 << 20)) } finally { closeSync(fd) }
}

const sha256File = (file: string) => new Promise<string>((resolve, reject) => {
  const h = createHash("sha256")
  createReadStream(file).on("data", (d) => h.update(d)).on("end", () => resolve(h.digest("hex"))).on("error", reject)
})

/** b3 copy succeeded (its stderr is shown if not) and said so. */
const expectCopied = (result: { status: number; stderr: string }) => {
  expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: expect.stringMatching(/^copied \d+ path/) })
}

const baseNameOf = (path: string) => path.slice("/nix/store/".length)
const pathInfoJson = (store: string, path: string) => (JSON.parse(b3(["path-info", "--store", store, "--json", path])) as Array<Record<string, unknown>>)[0]!
const pick = (o: Record<string, unknown>, keys: ReadonlyArray<string>) => Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]]))

beforeAll(async () => {
  server = await startS3Server(join(scratch, "s3"))
  ;({ secretKeyFile: sk, publicKey: pk } = makeCacheKey(scratch, "b3-s3-test-1"))
  fillRandom(join(scratch, "big.bin"), 200)
  fillRandom(join(scratch, "mid.bin"), 24)
  big = b3(["store", "add", "--store", source, join(scratch, "big.bin")])
  mid = b3(["store", "add", "--store", source, join(scratch, "mid.bin")])
  ;({ top, all: closure } = await addClosureOver(source, big, "big"))
}, 120_000)

afterAll(async () => {
  await server?.close()
  removeScratch(scratch)
})

describe("b3 copy with s3://", () => {
  it("round-trips a closure with a 200 MiB path byte for byte, peak RSS flat in the NAR size both ways", async () => {
    const uri = server.storeUri("roundtrip", { compression: "zstd", "secret-key": sk })
    const up = await runB3Async(["copy", "--from", source, "--to", uri, "--closure", "--no-check-sigs", top], env)
    expectCopied(up)
    expect(await danglingNarInfos(server.directUrl(), "roundtrip")).toEqual([])
    expect(server.openUploads("roundtrip")).toEqual([])
    // the 200 MiB NAR went up as a multipart upload
    expect(server.requests.some((r) => r.method === "POST" && r.url.includes("/roundtrip/nar/") && r.url.includes("uploads"))).toBe(true)

    const target = join(scratch, "roundtrip-target")
    const down = await runB3Async(["copy", "--from", server.storeUri("roundtrip", { "read-only": "true" }), "--to", target, "--closure", "--trusted-public-keys", pk, top], env)
    expectCopied(down)
    expect(b3(["path-info", "--store", target, "--closure", top]).split("\n").sort()).toEqual(closure)
    for (const path of closure) expect(pathInfoJson(target, path)).toMatchObject(pick(pathInfoJson(source, path), ["narHash", "narSize", "references", "ca"]))
    expect(await sha256File(join(target, "nix/store", baseNameOf(big)))).toBe(await sha256File(join(scratch, "big.bin")))
    nix("nix-store", ["--store", target, "--verify", "--check-contents"])

    // Memory is flat: the same round trip of the 24 MiB path alone (same code, same plugin loaded)
    // peaks within 100 MiB of the 200 MiB one; a NAR held whole would add its 176 MiB difference.
    const smallUri = server.storeUri("roundtrip-small", { compression: "zstd", "secret-key": sk })
    const smallUp = await runB3Async(["copy", "--from", source, "--to", smallUri, "--no-check-sigs", mid], env)
    expectCopied(smallUp)
    const smallDown = await runB3Async(["copy", "--from", server.storeUri("roundtrip-small", { "read-only": "true" }), "--to", join(scratch, "roundtrip-small-target"), "--trusted-public-keys", pk, mid], env)
    expectCopied(smallDown)
    const mib = (kib: number) => Math.round(kib / 1024)
    console.log(`s3 round trip: peak RSS up ${mib(up.maxRssKiB)} MiB (24 MiB path: ${mib(smallUp.maxRssKiB)}), down ${mib(down.maxRssKiB)} MiB (${mib(smallDown.maxRssKiB)})`)
    for (const kib of [up.maxRssKiB, down.maxRssKiB, smallUp.maxRssKiB, smallDown.maxRssKiB]) expect(kib).toBeGreaterThan(0)
    expect(up.maxRssKiB - smallUp.maxRssKiB).toBeLessThan(100 * 1024)
    expect(down.maxRssKiB - smallDown.maxRssKiB).toBeLessThan(100 * 1024)
  }, 180_000)

  // 24 MiB with 5 MiB parts: five parts of a multipart upload.
  const midUri = (bucket: string, extra: Record<string, string> = {}) => server.storeUri(bucket, { compression: "none", "buffer-size": String(5 << 20), ...extra })
  const isPart = (bucket: string, number?: number) => (r: { method: string; url: string }) =>
    r.method === "PUT" && r.url.startsWith(`/${bucket}/nar/`) && (number === undefined ? r.url.includes("partNumber=") : r.url.includes(`partNumber=${number}&`))

  it("retries through a burst of 503 SlowDown answers, up and down", async () => {
    // Up to `burst` answers are 503, at most two for the same request (a third attempt gets through).
    let burst = 0
    const hits = new Map<string, number>()
    server.fault = (r) => {
      const key = `${r.method} ${r.url}`
      if (!r.url.startsWith("/burst") || burst <= 0 || (hits.get(key) ?? 0) >= 2) return undefined
      burst--
      hits.set(key, (hits.get(key) ?? 0) + 1)
      return { kind: "error", status: 503, code: "SlowDown" }
    }
    const seenBefore = server.requests.length
    burst = 12
    const up = await runB3Async(["copy", "--from", source, "--to", midUri("burst"), "--no-check-sigs", mid], env)
    expectCopied(up)
    expect(burst).toBe(0)
    expect(await danglingNarInfos(server.directUrl(), "burst")).toEqual([])
    expect(server.openUploads("burst")).toEqual([])

    burst = 6
    hits.clear()
    const target = join(scratch, "burst-target")
    const down = await runB3Async(["copy", "--from", midUri("burst"), "--to", target, mid], env)
    server.fault = undefined
    expectCopied(down)
    expect(burst).toBe(0)
    expect(server.requests.slice(seenBefore).filter((r) => r.status === 503).length).toBe(18)
    expect(await sha256File(join(target, "nix/store", baseNameOf(mid)))).toBe(await sha256File(join(scratch, "mid.bin")))
  }, 60_000)

  it("s3rver killed mid-upload: b3 fails cleanly, aborts the upload once the server is back, leaves no narinfo", async () => {
    server.fault = (r) => isPart("killed", 2)(r) ? { kind: "hold" } : undefined
    const partTwo = server.waitFor(isPart("killed", 2))
    const running = startB3(["copy", "--from", source, "--to", midUri("killed"), mid], env)
    await partTwo
    await server.kill()
    server.release()
    // b3 gives up on the parts, then keeps trying to abort the upload: bring the server back then.
    await server.waitFor((r) => r.method === "DELETE" && r.url.startsWith("/killed/"))
    server.fault = undefined
    await server.restart()
    const result = await running.done
    expect(result.status).not.toBe(0)
    expect(result.stderr).toMatch(/upload part \d+ of nar\//)
    expect(server.openUploads("killed")).toEqual([])
    expect(await danglingNarInfos(server.directUrl(), "killed")).toEqual([])
    const narinfo = await fetch(`${server.directUrl()}/killed/${StorePath.parse(mid).pipe((r) => r._tag === "Success" ? r.success.hashPart : "")}.narinfo`)
    expect(narinfo.status).toBe(404)
  }, 90_000)

  it("b3 interrupted (SIGINT) mid-upload aborts the upload and writes no narinfo", async () => {
    server.fault = (r) => isPart("interrupted", 2)(r) ? { kind: "hold" } : undefined
    const partTwo = server.waitFor(isPart("interrupted", 2))
    const running = startB3(["copy", "--from", source, "--to", midUri("interrupted"), mid], env)
    await partTwo
    expect(server.openUploads("interrupted").length).toBe(1)
    running.signal("SIGINT")
    const result = await running.done
    server.fault = undefined
    server.release()
    expect(result.status).not.toBe(0)
    expect(server.requests.some((r) => r.method === "DELETE" && r.url.startsWith("/interrupted/") && r.status === 204)).toBe(true)
    expect(server.openUploads("interrupted")).toEqual([])
    expect(await danglingNarInfos(server.directUrl(), "interrupted")).toEqual([])
  }, 60_000)

  it("a download cut short is resumed where it stopped; one that keeps being cut fails and adds nothing", async () => {
    const up = await runB3Async(["copy", "--from", source, "--to", midUri("truncated"), mid], env)
    expectCopied(up)
    let cuts = 1
    server.fault = (r) => r.method === "GET" && r.url.startsWith("/truncated/nar/") && cuts-- > 0 ? { kind: "truncate", after: 3 << 20 } : undefined
    const target = join(scratch, "truncated-target")
    const resumed = await runB3Async(["copy", "--from", midUri("truncated"), "--to", target, mid], env)
    expectCopied(resumed)
    expect(server.requests.some((r) => r.url.startsWith("/truncated/nar/") && /^bytes=[1-9]\d*-$/.test(r.headers.range ?? ""))).toBe(true)
    expect(await sha256File(join(target, "nix/store", baseNameOf(mid)))).toBe(await sha256File(join(scratch, "mid.bin")))

    server.fault = (r) => r.method === "GET" && r.url.startsWith("/truncated/nar/") ? { kind: "truncate", after: 1 << 20 } : undefined
    const target2 = join(scratch, "truncated-target-2")
    const failed = await runB3Async(["copy", "--from", midUri("truncated"), "--to", target2, mid], env)
    server.fault = undefined
    expect(failed.status).not.toBe(0)
    expect(failed.stderr).toMatch(/GET nar\//)
    const info = await runB3Async(["path-info", "--store", target2, mid], env)
    expect(info.status).toBe(3)
  }, 60_000)
})
