/**
 * The binary-cache server's HTTP details and its defence against clients that stop reading: HEAD
 * gives the length GET would send; one range is honoured, several ranges get the whole file, spaces
 * are allowed; clients that request a big NAR and never read cannot keep other clients from
 * downloading (their transfer slots are given back), whether the NAR is a file, made on the fly, or
 * dumped from a local store into reused buffers (and what they get is the NAR, byte for byte).
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Result, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { connect, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { randomBytes } from "node:crypto"
import { zstdDecompressSync } from "node:zlib"
import * as Hash from "../../src/core/hash.ts"
import * as NarInfo from "../../src/core/narinfo.ts"
import * as Signature from "../../src/core/signature.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import { fileCacheLayer } from "../../src/layers/binary-cache/openers.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import type { PathInfo } from "../../src/core/path-info.ts"
import { StoreRead } from "../../src/services/store-read.ts"
import { StoreWrite } from "../../src/services/store-write.ts"
import { serveCache } from "../../src/servers/http-cache.ts"

const bigNar = (size: number) => {
  const nar = Result.getOrThrow(Tree.toNar(Tree.regular(randomBytes(size))))
  const info: PathInfo = {
    path: StorePath.makeText("big", Hash.hashBytes("sha256", nar), [], StorePath.defaultStoreDir),
    narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: []
  }
  return { info, nar }
}

/** A store holding one big path, served with 2 transfer slots and a short stall time. */
const serving = (store: Layer.Layer<StoreRead | StoreWrite, unknown>, size: number, compression: "none" | "zstd" = "none") => Effect.gen(function*() {
  // the store lives as long as the test's scope (a local store's database stays open for the server)
  const context = yield* Layer.build(store)
  return yield* Effect.gen(function*() {
    const { info, nar } = bigNar(size)
    yield* (yield* StoreWrite).addToStore(info, Stream.make(nar))
    const address = yield* serveCache({ host: "127.0.0.1", port: 0, maxConcurrentNars: 2, stallMs: 200, compression })
    const narUrl = `/nar/${info.path.hashPart}${compression === "zstd" ? ".nar.zst" : ".nar"}`
    return { base: `http://127.0.0.1:${address.port}`, port: address.port, hash: info.path.hashPart, nar, narUrl }
  }).pipe(Effect.provideContext(context))
})

const withCacheDir = <A, E, R>(use: (dir: string) => Effect.Effect<A, E, R>) => Effect.acquireUseRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-serve-test-"))), use, (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))

/** A client that asks for a NAR and never reads its body. */
const stalledClient = (port: number, path: string) => new Promise<Socket>((resolve) => {
  const socket = connect(port, "127.0.0.1", () => {
    socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`)
    socket.pause()
    resolve(socket)
  })
})

const stores = [
  ["a file cache (NAR files sent from disk)", (dir: string) => fileCacheLayer(dir, "compression=none"), "none"],
  ["an in-memory store (NARs made on the fly)", (_dir: string) => MemoryStore.layer(), "none"],
  ["a local store (NARs dumped from disk into buffers reused once the socket has them)", (dir: string) => LocalStore.layer({ root: join(dir, "root") }), "none"],
  ["a local store, zstd on the fly (dumped into reused buffers, each handed back once the compressor has it)", (dir: string) => LocalStore.layer({ root: join(dir, "root") }), "zstd"]
] as const

describe("b3 serve: HTTP details", () => {
  it.effect("HEAD gives the Content-Length of GET; several ranges get the whole file; spaces in a range are fine", () => withCacheDir((dir) => Effect.gen(function*() {
    const { base, hash, nar } = yield* serving(fileCacheLayer(dir, "compression=none"), 4096)
    for (const path of ["/nix-cache-info", `/${hash}.narinfo`, `/nar/${hash}.nar`]) {
      const get = yield* Effect.promise(() => fetch(base + path))
      const body = new Uint8Array(yield* Effect.promise(() => get.arrayBuffer()))
      const head = yield* Effect.promise(() => fetch(base + path, { method: "HEAD" }))
      expect(head.status).toBe(200)
      expect(head.headers.get("content-length")).toBe(String(body.length))
      expect(body.length).toBeGreaterThan(0)
    }
    const several = yield* Effect.promise(() => fetch(`${base}/nar/${hash}.nar`, { headers: { range: "bytes=0-0,5-10" } }))
    expect(several.status).toBe(200)
    expect(Buffer.from(yield* Effect.promise(() => several.arrayBuffer())).equals(Buffer.from(nar))).toBe(true)
    const spaced = yield* Effect.promise(() => fetch(`${base}/nar/${hash}.nar`, { headers: { range: "bytes= 1-2" } }))
    expect(spaced.status).toBe(206)
    expect(spaced.headers.get("content-range")).toBe(`bytes 1-2/${nar.length}`)
    expect(Buffer.from(yield* Effect.promise(() => spaced.arrayBuffer())).equals(Buffer.from(nar.subarray(1, 3)))).toBe(true)
    const unsatisfiable = yield* Effect.promise(() => fetch(`${base}/nar/${hash}.nar`, { headers: { range: `bytes=${nar.length}-` } }))
    expect(unsatisfiable.status).toBe(416)
  }).pipe(Effect.scoped)))
})

describe("b3 serve: narinfos kept in memory", () => {
  const key = Signature.generateSecretKey("serve-test-1")
  /** A memory store with one path, served signing with `key`; gives its store path and a way to fetch its narinfo. */
  const servingSigned = (narInfoCacheMs: number | undefined) => Effect.gen(function*() {
    const context = yield* Layer.build(MemoryStore.layer())
    const { info, nar } = bigNar(1000)
    const write = Context.get(context, StoreWrite)
    yield* write.addToStore(info, Stream.make(nar))
    const address = yield* serveCache({ host: "127.0.0.1", port: 0, secretKeys: [key], ...(narInfoCacheMs === undefined ? {} : { narInfoCacheMs }) }).pipe(Effect.provideContext(context))
    const narinfo = Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${address.port}/${info.path.hashPart}.narinfo`)
      expect(response.status).toBe(200)
      return Result.getOrThrow(NarInfo.parse(await response.text()))
    })
    return { info, narinfo, write }
  })

  it.effect("a narinfo answered again is the same, its signature made on the fly valid both times", () => Effect.gen(function*() {
    const { narinfo } = yield* servingSigned(undefined)
    const first = yield* narinfo
    const again = yield* narinfo
    expect(again).toEqual(first)
    for (const ni of [first, again]) expect(Result.getOrThrow(NarInfo.verify(ni, [Signature.publicKeyOf(key)]))).toBe("serve-test-1")
  }).pipe(Effect.scoped))

  it.effect("is made again from the store once narInfoCacheMs has passed (0: every time), and kept until then", () => Effect.gen(function*() {
    const other = Signature.generateSecretKey("other-1")
    for (const ttl of [0, 3_600_000]) {
      const { info, narinfo, write } = yield* servingSigned(ttl)
      const before = yield* narinfo
      const sig = Signature.signDetached(other, NarInfo.fingerprint(before))
      yield* write.addSignatures(info.path, [sig])
      const after = yield* narinfo
      // kept for an hour: the store's new signature is not seen yet; not kept: it is
      expect(after.sigs.includes(sig)).toBe(ttl === 0)
      expect(Result.getOrThrow(NarInfo.verify(after, [Signature.publicKeyOf(key)]))).toBe("serve-test-1")
    }
  }).pipe(Effect.scoped))
})

describe("b3 serve: clients that stop reading", () => {
  for (const [name, layer, compression] of stores) {
    it.effect(`cannot starve the others: ${name}`, () => withCacheDir((dir) => Effect.gen(function*() {
      // 48 MiB: more than the kernel's socket buffers take, so a client that does not read blocks its transfer
      const { base, port, nar, narUrl } = yield* serving(layer(dir), 48 << 20, compression)
      const stalled = yield* Effect.promise(() => Promise.all(Array.from({ length: 6 }, () => stalledClient(port, narUrl))))
      yield* Effect.addFinalizer(() => Effect.sync(() => { for (const socket of stalled) socket.destroy() }))
      // with 2 slots and 6 stalled transfers, these complete only if stalled transfers give their slots back
      for (let i = 0; i < 3; i++) {
        const response = yield* Effect.promise(() => fetch(`${base}${narUrl}`))
        expect(response.status).toBe(200)
        const sent = Buffer.from(yield* Effect.promise(() => response.arrayBuffer()))
        const body = compression === "zstd" ? zstdDecompressSync(sent) : sent
        expect(body.length).toBe(nar.length)
        expect(Hash.equals(Hash.hashBytes("sha256", body), Hash.hashBytes("sha256", nar))).toBe(true)
      }
    }).pipe(Effect.scoped)), 120_000)
  }
})
