/**
 * A binary-cache HTTP server over the `StoreRead` of the context (`b3 serve`): `/nix-cache-info`,
 * `/<hash>.narinfo` (signed on the fly when given a key) and `/nar/<hash>.nar[.xz|.zst]`: a binary
 * cache's NAR files are passed on as they are (no decompression, no re-hashing: the client checks
 * the NAR hash, as Nix does), other stores' NARs are made on the fly and compressed as asked.
 * `Range` is honoured for files of known size.
 * GET and HEAD; anything that is not exactly one of these names is a 404 or 400, so no request
 * can reach outside the store. NAR transfers are bounded in number; the server stops gracefully
 * when its scope closes.
 */
import { Context, Effect, Layer, Option, Semaphore, Stream } from "effect"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createReadStream } from "node:fs"
import { createServer } from "node:http"
import * as CacheInfo from "../core/cache-info.ts"
import * as NarInfo from "../core/narinfo.ts"
import type * as Signature from "../core/signature.ts"
import type * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import { StoreCorrupt } from "../services/store-errors.ts"
import type { PathInfo } from "../services/path-info.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead } from "../services/store-read.ts"
import { compress, extension, isCompression, type Compression } from "../io/compression.ts"
import { fromPathInfo } from "../services/narinfo-convert.ts"

export interface ServeOptions {
  readonly host: string
  readonly port: number
  readonly secretKeys?: ReadonlyArray<Signature.SecretKey>
  /** Compression applied on the fly to NARs (default none: fastest, and allows Range). */
  readonly compression?: Compression
  /** NAR transfers at once (default 32). */
  readonly maxConcurrentNars?: number
  readonly priority?: number
  /** One line per request (method, path, status, bytes, ms); default: none. */
  readonly accessLog?: (line: string) => void
}

/** A NAR file as served: its compression, its hash and size when known, its bytes. */
interface ServedNar {
  readonly compression: Compression
  readonly fileHash?: Hash.Hash | undefined
  readonly fileSize?: number | undefined
  readonly bytes: Stream.Stream<Uint8Array, unknown>
  readonly file?: string | undefined
}

const hashPartRe = /^[0123456789abcdfghijklmnpqrsvwxyz]{32}$/
const narRe = /^\/nar\/([0123456789abcdfghijklmnpqrsvwxyz]{32})\.nar(\.xz|\.zst|\.bz2)?$/
const narinfoRe = /^\/([0123456789abcdfghijklmnpqrsvwxyz]{32})\.narinfo$/

const parseRange = (header: string | undefined, size: number): { start: number; end: number } | "invalid" | undefined => {
  if (!header) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!m || (m[1] === "" && m[2] === "")) return "invalid"
  let start: number
  let end: number
  if (m[1] === "") { start = Math.max(0, size - Number(m[2])); end = size - 1 } else {
    start = Number(m[1])
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1)
  }
  return start > end || start >= size ? "invalid" : { start, end }
}

/** The bytes [start, end] of a stream, without buffering it. */
const slice = <E>(stream: Stream.Stream<Uint8Array, E>, start: number, end: number): Stream.Stream<Uint8Array, E> =>
  Stream.suspend(() => {
    let offset = 0
    return stream.pipe(
      Stream.map((chunk) => {
        const from = Math.max(start - offset, 0)
        const to = Math.min(end + 1 - offset, chunk.length)
        offset += chunk.length
        return from < to ? chunk.subarray(from, to) : new Uint8Array(0)
      }),
      Stream.filter((chunk) => chunk.length > 0),
      Stream.takeUntil(() => offset > end)
    )
  })

export const makeCacheHandler = (options: Omit<ServeOptions, "host" | "port">) => Effect.gen(function*() {
  const store = yield* StoreRead
  const semaphore = yield* Semaphore.make(options.maxConcurrentNars ?? 32)
  const compression = options.compression ?? "none"
  const cacheInfo = CacheInfo.print({ storeDir: store.storeDir, wantMassQuery: true, priority: options.priority ?? 30 })
  const notFound = HttpServerResponse.text("404 not found\n", { status: 404 })

  /**
   * The NAR file served for a path: the store's own file when it keeps one (a binary cache), passed
   * on unchanged, else the NAR made on the fly, compressed as asked. FileHash/FileSize are optional
   * in Nix's format; they are unknown for on-the-fly compression.
   */
  const servedNar = (path: StorePath.StorePath, info: PathInfo): Effect.Effect<ServedNar, StoreError> => {
    if (store.storedNar) {
      return Effect.flatMap(store.storedNar(path), (stored) => isCompression(stored.compression)
        ? Effect.succeed({ ...stored, compression: stored.compression })
        : Effect.fail(new StoreCorrupt({ store: store.uri, reason: `${StorePath.print(path, store.storeDir)} uses unknown compression '${stored.compression}'` })))
    }
    const nar = store.narFromPath(path)
    return Effect.succeed(compression === "none"
      ? { compression, fileHash: info.narHash, fileSize: info.narSize, bytes: nar }
      : { compression, bytes: compress(nar, compression) })
  }

  const narInfoFor = (hashPart: string) => Effect.gen(function*() {
    const path = yield* store.queryPathFromHashPart(hashPart)
    if (Option.isNone(path)) return Option.none<NarInfo.NarInfo>()
    const info = yield* store.queryPathInfo(path.value)
    const served = yield* servedNar(path.value, info)
    const url = `nar/${hashPart}${extension[served.compression]}`
    const ni = fromPathInfo(info, { url, compression: served.compression, fileHash: served.fileHash, fileSize: served.fileSize }, store.storeDir)
    return Option.some((options.secretKeys ?? []).reduce((acc, key) => NarInfo.sign(acc, key, store.storeDir), ni))
  })

  const handle = (request: HttpServerRequest.HttpServerRequest) => Effect.gen(function*() {
    const method = request.method
    if (method !== "GET" && method !== "HEAD") {
      return HttpServerResponse.text("405 method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } })
    }
    const pathname = request.url.split("?")[0]!
    const head = method === "HEAD"
    if (pathname === "/nix-cache-info") {
      return HttpServerResponse.text(head ? "" : cacheInfo, { contentType: "text/x-nix-cache-info" })
    }
    const narinfo = narinfoRe.exec(pathname)
    if (narinfo) {
      const found = yield* narInfoFor(narinfo[1]!)
      if (Option.isNone(found)) return notFound
      const text = NarInfo.print(found.value)
      return HttpServerResponse.text(head ? "" : text, { contentType: "text/x-nix-narinfo" })
    }
    const nar = narRe.exec(pathname)
    if (nar) {
      const wanted = (Object.entries(extension) as Array<[Compression, string]>).find(([, e]) => e === (nar[2] ? `.nar${nar[2]}` : ".nar"))?.[0]
      if (!wanted) return notFound
      const path = yield* store.queryPathFromHashPart(nar[1]!)
      if (Option.isNone(path)) return notFound
      const info = yield* store.queryPathInfo(path.value)
      const served = yield* servedNar(path.value, info)
      // The file the narinfo names; or the plain NAR, which is always there.
      const file: ServedNar | undefined = wanted === served.compression ? served
        : wanted === "none" ? { compression: "none", fileSize: info.narSize, bytes: store.narFromPath(path.value) }
        : undefined
      if (!file) return notFound
      const size = file.fileSize
      const headers = { "content-type": "application/x-nix-nar", "accept-ranges": size !== undefined ? "bytes" : "none" }
      if (size === undefined) {
        if (head) return HttpServerResponse.empty({ status: 200, headers })
        return HttpServerResponse.stream(withPermit(semaphore, file.bytes), { headers })
      }
      const range = parseRange(request.headers["range"], size)
      if (range === "invalid") {
        return HttpServerResponse.empty({ status: 416, headers: { ...headers, "content-range": `bytes */${size}` } })
      }
      const status = range ? 206 : 200
      const { start, end } = range ?? { start: 0, end: size - 1 }
      const length = end - start + 1
      const h = range ? { ...headers, "content-range": `bytes ${start}-${end}/${size}` } : headers
      if (head) return HttpServerResponse.empty({ status, headers: { ...h, "content-length": String(length) } })
      // A file on disk is piped to the socket by Node itself; anything else is streamed chunk by chunk.
      if (file.file !== undefined) return HttpServerResponse.raw(yield* fileWithPermit(semaphore, file.file, start, end), { status, headers: h, contentLength: length })
      const bytes = range ? slice(file.bytes, start, end) : file.bytes
      return HttpServerResponse.stream(withPermit(semaphore, bytes), { status, headers: h, contentLength: length })
    }
    if (hashPartRe.test(pathname.slice(1)) || pathname === "/" || pathname.startsWith("/nar/")) return notFound
    return HttpServerResponse.text("400 bad request: not a binary-cache file name\n", { status: 400 })
  }).pipe(
    Effect.catch((error) => Effect.succeed(
      (error as { _tag?: string })._tag === "PathNotValid" ? notFound
        : HttpServerResponse.text(`500 ${(error as Error).message}\n`, { status: 500 })
    ))
  )

  return (request: HttpServerRequest.HttpServerRequest) => {
    const started = Date.now()
    return Effect.tap(handle(request), (response) => Effect.sync(() => {
      options.accessLog?.(`${request.method} ${request.url} ${response.status} ${Date.now() - started}ms`)
    }))
  }
})

/** A read stream of bytes [start, end] of a file, holding a permit of `semaphore` until it closes. */
const fileWithPermit = (semaphore: Semaphore.Semaphore, path: string, start: number, end: number) =>
  Effect.flatMap(semaphore.take(1), () => Effect.sync(() => {
    const stream = createReadStream(path, { start, end, highWaterMark: 1 << 20 })
    stream.once("close", () => Effect.runFork(semaphore.release(1)))
    return stream
  }))

/** Holds a permit of `semaphore` for as long as the stream runs. */
const withPermit = <E>(semaphore: Semaphore.Semaphore, stream: Stream.Stream<Uint8Array, E>): Stream.Stream<Uint8Array, E> =>
  Stream.unwrap(Effect.map(Effect.acquireRelease(semaphore.take(1), () => semaphore.release(1)), () => stream))

/** Serves the store of the context until the scope closes; gives the bound address (port 0 picks a free one). */
export const serveCache = (options: ServeOptions) => Effect.gen(function*() {
  const handler = yield* makeCacheHandler(options)
  // Loaded on first use, like the HTTP client: only `serve` needs it.
  const NodeHttpServer = yield* Effect.promise(() => import("@effect/platform-node/NodeHttpServer"))
  const app = HttpRouter.add("*", "/*", handler)
  const serverLayer = HttpRouter.serve(app, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options.port, host: options.host })))
  const context = yield* Layer.build(serverLayer)
  return Context.get(context, HttpServer.HttpServer).address
})

