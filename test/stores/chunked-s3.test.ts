/**
 * The chunk store over S3 (s3rver on 127.0.0.1), opened as `chunked+s3://…` as a user would: the
 * store suite, and that packs go up as single PUTs (a handful of PUTs per path, not one per chunk).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { join } from "node:path"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import { builtinRegistry } from "../../src/compose/registry.ts"
import { openStore, requireMaintenance, requireWrite, StoreRegistry } from "../../src/services/registry.ts"
import { useS3Server } from "../support/s3-server.ts"
import { storeConformance, uriStore } from "./store-suite.ts"
import { Context, Result } from "effect"
import { StoreRead } from "../../src/services/store-read.ts"

const { scratch, server: s3 } = useS3Server("b3-chunked-s3-")

let buckets = 0
const freshBucket = () => `chunks-${process.pid}-${++buckets}`
const uriFor = (bucket: string, params: Record<string, string> = {}) => {
  const base = s3().storeUri(bucket, { index: join(scratch, `${bucket}.sqlite`), ...params })
  return base.replace(/^s3:/, "chunked+s3:")
}
const openWritable = (uri: string) => Effect.gen(function*() {
  const s = yield* Effect.provideService(openStore(uri), StoreRegistry, builtinRegistry)
  return { read: Context.get(s, StoreRead), write: yield* requireWrite(s), maintenance: yield* requireMaintenance(s, "garbage collection") }
})

storeConformance("chunked+s3 (SQLite index)", () => uriStore(Effect.sync(() => uriFor(freshBucket()))), { checksReferences: false })

describe("chunked+s3 specifics", () => {
  it.effect("a path's packs go up as single PUTs; GC deletes objects", () => Effect.scoped(Effect.gen(function*() {
    const bucket = freshBucket()
    const { read, write, maintenance } = yield* openWritable(uriFor(bucket, { "pack-size": "1" }))
    const data = new Uint8Array(5 << 20)
    let x = 12345
    for (let i = 0; i < data.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; data[i] = x & 0xff }
    const nar = Result.getOrThrow(Tree.toNar(Tree.regular(data)))
    const path = StorePath.makeFixedOutput("recursive", Hash.hashBytes("sha256", nar), "big", {})
    const before = s3().requests.length
    yield* write.addToStore({ path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: [] }, Stream.make(nar))
    const puts = s3().requests.slice(before).filter((r) => r.method === "PUT" || r.method === "POST")
    // 5 MiB in 1 MiB packs: 5-6 packs and their indexes, one record; no multipart uploads
    expect(puts.length).toBeLessThanOrEqual(2 * 6 + 1)
    expect(puts.some((r) => r.url.includes("uploadId") || r.url.includes("uploads"))).toBe(false)
    const back = Buffer.concat([...yield* Stream.runCollect(read.narFromPath(path))])
    expect(Buffer.compare(back, nar)).toBe(0)
    yield* maintenance.deletePaths!([path])
    const gc = yield* maintenance.collectGarbage()
    expect(gc.bytesFreed).toBeGreaterThan(5 << 20)
    const xml = yield* Effect.promise(async () => (await fetch(`${s3().directUrl()}/${bucket}?list-type=2`)).text())
    expect([...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1])).toEqual(["chunk-store-info"])
  })))
})
