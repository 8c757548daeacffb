/**
 * The S3 layer against a real S3-compatible server (s3rver on 127.0.0.1): the StoreRead/StoreWrite
 * conformance suite, opened through the `s3://` URI as a user would, plus what is particular to
 * S3: multipart uploads (streamed, aborted on failure), the bucket created on first write, the
 * object layout of a Nix binary cache, and credentials from a shared-config profile.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { open, openWritable } from "../support/stores.ts"
import { storeConformance, uriStore } from "./store-suite.ts"
import { useS3Server } from "../support/s3-server.ts"
import * as MemoryStore from "../../src/layers/memory.ts"

const { scratch, server: s3 } = useS3Server("b3-s3-")

let buckets = 0
const freshBucket = () => `conf-${process.pid}-${++buckets}`

// 5 MiB parts (S3's smallest), so the suite's 12 MiB path goes up as a multipart upload.
storeConformance("s3:// binary cache (zstd, multipart)", () => uriStore(Effect.sync(() => s3().storeUri(freshBucket(), { compression: "zstd", "buffer-size": String(5 << 20) }))), { checksReferences: false })
storeConformance("s3:// binary cache (xz)", () => uriStore(Effect.sync(() => s3().storeUri(freshBucket()))), { checksReferences: false })

const listKeys = async (bucket: string) => {
  const xml = await (await fetch(`${s3().directUrl()}/${bucket}?list-type=2`)).text()
  return [...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]!).sort()
}

describe("s3:// specifics", () => {
  it.effect("lays objects out as a Nix binary cache; a streamed NAR is named by its NAR hash", () => Effect.scoped(Effect.gen(function*() {
    const bucket = freshBucket()
    const { write } = yield* openWritable(s3().storeUri(bucket, { compression: "none" }))
    const info = yield* write.addText("hello", "hello s3\n")
    const keys = yield* Effect.promise(() => listKeys(bucket))
    expect(keys).toEqual([`${info.path.hashPart}.narinfo`, `nar/${(yield* Effect.promise(async () => (await import("../../src/core/hash.ts")).encode(info.narHash, "base32")))}.nar`, "nix-cache-info"].sort())
    const narinfo = yield* Effect.promise(async () => (await fetch(`${s3().directUrl()}/${bucket}/${info.path.hashPart}.narinfo`)).text())
    expect(narinfo).toMatch(/^Compression: none$/m)
    expect(narinfo).toMatch(/^FileSize: \d+$/m)
  })))

  it.effect("a body that fails after some parts aborts the multipart upload: no object, no open upload", () => Effect.scoped(Effect.gen(function*() {
    const bucket = freshBucket()
    const { write, read } = yield* openWritable(s3().storeUri(bucket, { compression: "none", "buffer-size": String(5 << 20) }))
    const big = Buffer.alloc(16 << 20, 7)
    const mem = MemoryStore.make()
    const dir = mkdtempSync(join(scratch, "big-"))
    writeFileSync(join(dir, "big"), big)
    const info = yield* mem.write.addPath(join(dir, "big"))
    const nar = Buffer.concat([...(yield* Stream.runCollect(mem.read.narFromPath(info.path)))])
    const parts = s3().requests.length
    // The body fails once the server has stored a part (a later part is then in flight).
    const partStored = s3().waitForAnswer((r) => r.method === "PUT" && r.url.includes("partNumber=") && r.status === 200)
    const failing = Stream.concat(Stream.make(nar.subarray(0, 12 << 20)),
      Stream.fromEffect(Effect.flatMap(Effect.promise(() => partStored), () => Effect.fail("connection lost" as const))))
    const exit = yield* Effect.exit(write.addToStore(info, failing))
    expect(Exit.isFailure(exit)).toBe(true)
    const seen = s3().requests.slice(parts).map((r) => `${r.method} ${r.url.replace(/\?.*/, "?…")}`)
    expect(seen.filter((r) => r.startsWith("PUT") && r.includes("nar/")).length).toBeGreaterThanOrEqual(1) // parts went up
    expect(seen.some((r) => r.startsWith("DELETE"))).toBe(true) // and the upload was aborted
    expect(s3().openUploads(bucket)).toEqual([])
    expect(yield* Effect.promise(() => listKeys(bucket))).toEqual(["nix-cache-info"])
    expect(yield* read.isValidPath(info.path)).toBe(false)
  })))

  it.effect("takes credentials from a shared-config profile; wrong credentials fail without showing the secret", () => Effect.scoped(Effect.gen(function*() {
    const credentials = join(scratch, "credentials")
    writeFileSync(credentials, "[b3test]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n[wrong]\naws_access_key_id = NOBODY\naws_secret_access_key = very-secret-value\n")
    const saved = { ...process.env }
    delete process.env["AWS_ACCESS_KEY_ID"]
    delete process.env["AWS_SECRET_ACCESS_KEY"]
    process.env["AWS_SHARED_CREDENTIALS_FILE"] = credentials
    yield* Effect.addFinalizer(() => Effect.sync(() => { Object.assign(process.env, saved) }))
    const bucket = freshBucket()
    const { write } = yield* openWritable(s3().storeUri(bucket, { profile: "b3test" }))
    yield* write.addText("via-profile", "ok")
    const error = yield* Effect.flip(open(s3().storeUri(bucket, { profile: "wrong" })))
    expect(error.message).toMatch(/InvalidAccessKeyId|403/)
    expect(error.message).not.toContain("very-secret-value")
  })))

  it.effect("refuses bad s3:// URIs", () => Effect.gen(function*() {
    for (const [uri, reason] of [
      ["s3://Bad_Bucket", /bucket name/],
      ["s3://bucket/with/path", /bucket name/],
      ["s3://bucket?scheme=ftp", /scheme/],
      ["s3://bucket?addressing-style=sideways", /addressing-style/],
      ["s3://bucket?buffer-size=1024", /buffer-size/],
      ["s3://bucket?colour=red", /unknown option/]
    ] as const) {
      const error = yield* Effect.flip(Effect.scoped(open(uri)))
      expect(error._tag).toBe("BadStoreUri")
      expect(error.message).toMatch(reason)
    }
  }))
})
