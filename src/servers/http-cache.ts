/**
 * A binary-cache HTTP server over the `StoreRead` of the context (`b3 serve`): `/nix-cache-info`,
 * `/<hash>.narinfo` (signed on the fly when given a key) and `/nar/<hash>.nar[.xz|.zst|.bz2]`: a
 * binary cache's NAR files are passed on as they are (no decompression, no re-hashing: the client
 * checks the NAR hash, as Nix does), other stores' NARs are made on the fly and compressed as asked.
 * GET and HEAD; anything that is not exactly one of these names is a 404 or 400, so no request can
 * reach outside the store. `Range` (one range) is honoured for files of known size.
 * `/realisations/<drv output>.doi` serves the store's realisations of content-addressed derivation
 * outputs (signed on the fly when given a key).
 *
 * Narinfos, once rendered (and signed), are kept in memory by hash part for `narInfoCacheMs`
 * (default 10 s, at most 4 MiB): a repeated lookup costs a map lookup and one write.
 *
 * The server is a Scope resource, its lookups are Effect programs run with the store's services;
 * bodies go straight to Node's sockets (a file on disk through a read stream, anything else with
 * back-pressure), with no framework between, so the hot paths cost what Node's own do.
 *
 * Transfers: at most `maxConcurrentNars` NARs are sent at once. A client that stops reading cannot
 * hold a slot: a transfer blocked on a full socket for `stallMs` gives its slot back (it goes on if
 * the client reads again), and a connection idle for `idleTimeoutMs` is closed.
 */
import { Cause, Context, Effect, Exit, Option, Schema, type Scope, Semaphore, Stream } from "effect"
import { close as closeFd, open, read } from "node:fs"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import * as CacheInfo from "../core/cache-info.ts"
import type * as Hash from "../core/hash.ts"
import * as NarInfo from "../core/narinfo.ts"
import * as Realisation from "../core/realisation.ts"
import type * as Signature from "../core/signature.ts"
import * as StorePath from "../core/store-path.ts"
import { compress, compressor, extension, isCompression, type Compression } from "../io/compression.ts"
import { SpentBuffers } from "../io/spent-buffers.ts"
import { fromPathInfo } from "../services/narinfo-convert.ts"
import type { PathInfo } from "../core/path-info.ts"
import { StoreCorrupt, type StoreError } from "../services/store-errors.ts"
import { StoreRead } from "../services/store-read.ts"

/** A handler mounted under a path prefix of the same listener (e.g. the web view under `/ui/`); true when it took the request. */
export type Mount = (request: IncomingMessage, response: ServerResponse) => boolean

export interface ServeOptions {
  readonly host: string
  readonly port: number
  readonly secretKeys?: ReadonlyArray<Signature.SecretKey>
  /** Compression applied on the fly to NARs (default none: fastest, and allows Range). */
  readonly compression?: Compression
  /** NAR transfers at once (default 32). */
  readonly maxConcurrentNars?: number
  /**
   * Of those, NARs made on the fly (from a store that has no file for them, or compressed here) at
   * once (default 8 plain, 4 compressed): each holds a few read buffers, and a compressor its state,
   * while the two cores could not make more of them go faster.
   */
  readonly maxConcurrentMadeNars?: number
  /** Level for on-the-fly compression (default: zstd 1, xz 6, bzip2 9). */
  readonly compressionLevel?: number
  /** A transfer blocked this long on a client that does not read gives its slot back (default 2 s). */
  readonly stallMs?: number
  /** A connection with no traffic for this long is closed (default 60 s). */
  readonly idleTimeoutMs?: number
  readonly priority?: number
  /**
   * How long a rendered (and signed) narinfo is served from memory before it is made again from the
   * store, in ms (default 10 s; 0: never kept). A path deleted or re-signed in the store meanwhile
   * shows in its narinfo this late at most (Nix itself keeps narinfos it fetched for 30 days).
   */
  readonly narInfoCacheMs?: number
  /** Bytes of rendered narinfos kept at most, least recently used dropped first (default 4 MiB). */
  readonly narInfoCacheBytes?: number
  /** One line per request (method, path, status, ms); default: none. */
  readonly accessLog?: (line: string) => void
  /** Other handlers on the same listener, tried first. */
  readonly mounts?: ReadonlyArray<Mount>
}

/** A NAR file as served: its compression, its hash and size when known, its bytes. */
interface ServedNar {
  readonly compression: Compression
  readonly fileHash?: Hash.Hash | undefined
  readonly fileSize?: number | undefined
  readonly bytes: Stream.Stream<Uint8Array, unknown>
  /** A file on disk with exactly these bytes. */
  readonly file?: string | undefined
  /**
   * The plain NAR fed chunk by chunk into buffers the store reuses (whole NARs only), to be
   * compressed here when `compression` is not none.
   */
  readonly feed?: ((consume: (chunk: Uint8Array) => Promise<"stop" | undefined>) => Effect.Effect<void, unknown>) | undefined
  /** The bytes as served (already compressed as `compression` says) fed into buffers the store reuses. */
  readonly feedAsIs?: ((consume: (chunk: Uint8Array) => Promise<"stop" | undefined>) => Effect.Effect<void, unknown>) | undefined
}

const hashPartRe = /^[0123456789abcdfghijklmnpqrsvwxyz]{32}$/
const narRe = /^\/nar\/([0123456789abcdfghijklmnpqrsvwxyz]{32})\.nar(\.xz|\.zst|\.bz2)?$/
const narinfoRe = /^\/([0123456789abcdfghijklmnpqrsvwxyz]{32})\.narinfo$/
const realisationRe = /^\/realisations\/([^/]+)\.doi$/

/**
 * One byte range of a file of `size` bytes (`bytes=A-B`, `bytes=A-`, `bytes=-N`, spaces allowed);
 * `all` for no header or several ranges (the whole file is sent then, as RFC 9110 allows),
 * `invalid` when it cannot be satisfied.
 */
export const parseRange = (header: string | undefined, size: number): { start: number; end: number } | "all" | "invalid" => {
  if (!header) return "all"
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header)
  if (!m) return "all"
  const ranges = m[1]!.split(",")
  if (ranges.length !== 1) return "all"
  const r = /^\s*(\d*)\s*-\s*(\d*)\s*$/.exec(ranges[0]!)
  if (!r || (r[1] === "" && r[2] === "")) return "invalid"
  let start: number
  let end: number
  if (r[1] === "") {
    start = Math.max(0, size - Number(r[2]))
    end = size - 1
  } else {
    start = Number(r[1])
    end = r[2] === "" ? size - 1 : Math.min(Number(r[2]), size - 1)
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

/**
 * NAR transfer slots. A transfer holds one until it ends, or until it has been blocked on its
 * client for `stallMs`: then it gives the slot back and goes on without one.
 */
const makeSlots = (count: number, stallMs: number) => {
  const semaphore = Semaphore.makeUnsafe(count)
  return {
    /** Waits for a slot; gives `release` (idempotent) and `blocked`/`unblocked` to call around a full socket. */
    take: Effect.map(semaphore.take(1), () => {
      let held = true
      let timer: NodeJS.Timeout | undefined
      const release = () => {
        if (timer) { clearTimeout(timer); timer = undefined }
        if (held) { held = false; Effect.runFork(semaphore.release(1)) }
      }
      return {
        release,
        blocked: () => { if (held && !timer) timer = setTimeout(release, stallMs) },
        unblocked: () => { if (timer) { clearTimeout(timer); timer = undefined } }
      }
    })
  }
}

type Slot = Effect.Success<ReturnType<typeof makeSlots>["take"]>

/** Writes a stream to the response with back-pressure; the slot is told when the socket is full. */
const sendStream = <E>(stream: Stream.Stream<Uint8Array, E>, response: ServerResponse, slot: Slot): Effect.Effect<void, E> =>
  Effect.andThen(
    Stream.runForEach(stream, (chunk) => Effect.callback<void>((resume) => {
      if (response.destroyed) return resume(Effect.interrupt)
      if (response.write(chunk)) return resume(Effect.void)
      slot.blocked()
      const go = () => { cleanup(); slot.unblocked(); resume(Effect.void) }
      const gone = () => { cleanup(); resume(Effect.interrupt) }
      const cleanup = () => { response.off("drain", go); response.off("close", gone) }
      response.once("drain", go)
      response.once("close", gone)
    })),
    Effect.sync(() => { response.end() })
  )

/**
 * Writes chunks the store will reuse: each is handed back (the promise settles) only once the
 * socket has taken it, so a NAR dumped from disk makes no garbage per chunk.
 */
const sendFed = (feed: NonNullable<ServedNar["feed"]>, response: ServerResponse, slot: Slot): Effect.Effect<void, unknown> =>
  Effect.andThen(
    feed((chunk) => new Promise((resolve) => {
      if (response.destroyed) return resolve("stop")
      const ok = response.write(chunk, (error) => resolve(error ? "stop" : undefined))
      if (!ok) { slot.blocked(); response.once("drain", slot.unblocked) }
    })),
    Effect.sync(() => { if (!response.destroyed) response.end() })
  )

/**
 * Compresses chunks the store will reuse on the way to the response: each is handed back once the
 * compressor has taken it, and the compressor pauses while the socket is full. (Compressing
 * `narFromPath`'s fresh chunks instead left ~50 MiB of buffers to the garbage collector.)
 */
const sendFedCompressed = (feed: NonNullable<ServedNar["feed"]>, compression: Exclude<Compression, "none">, options: { level?: number }, response: ServerResponse, slot: Slot): Effect.Effect<void, unknown> =>
  Effect.suspend(() => {
    const z = compressor(compression, options)
    /** Writes the compressor has not called back yet: a compressor closed early stops the feed. */
    const pending = new Set<(stop: "stop" | undefined) => void>()
    let ended = false
    const done = new Promise<void>((resolve) => {
      z.once("end", () => { ended = true; resolve() })
      z.once("close", () => { for (const stop of pending) stop("stop"); pending.clear(); resolve() })
    })
    z.on("error", () => response.destroy())
    const spent = compression === "zstd" ? new SpentBuffers() : undefined
    if (spent) z.once("end", () => spent.end())
    z.on("data", (chunk: Uint8Array) => {
      if (spent ? response.write(chunk, spent.track(chunk)) : response.write(chunk)) return
      z.pause()
      slot.blocked()
      response.once("drain", () => { slot.unblocked(); z.resume() })
    })
    response.once("close", () => z.destroy())
    return feed((chunk) => new Promise((resolve) => {
      if (response.destroyed || z.destroyed) return resolve("stop")
      const settle = (stop: "stop" | undefined) => { if (pending.delete(settle)) resolve(stop) }
      pending.add(settle)
      z.write(chunk, (error) => settle(error ? "stop" : undefined))
    })).pipe(
      Effect.andThen(Effect.promise(() => { if (!z.destroyed) z.end(); return done })),
      Effect.andThen(Effect.sync(() => { if (ended && !response.destroyed) response.end(); else response.destroy() })),
      Effect.onInterrupt(() => Effect.sync(() => z.destroy()))
    )
  })

/**
 * Read buffers for files being sent, reused: a buffer is free again once the socket has taken its
 * bytes. 128 KiB: 256 KiB and 1 MiB were no faster on loopback in bench/serve (16 clients, 0.9-1.1x
 * nginx either way), and 16 transfers hold 4 MiB instead of 8 (peak RSS 100-101 -> 95-98 MiB).
 */
const fileChunk = 128 << 10
const freeBuffers: Array<Buffer> = []
const takeBuffer = () => freeBuffers.pop() ?? Buffer.allocUnsafeSlow(fileChunk)
const giveBuffer = (buffer: Buffer) => { if (freeBuffers.length < 64) freeBuffers.push(buffer) }

/**
 * Sends bytes [start, end] of a file: reads into two reused buffers, the next read overlapping the
 * previous write, each buffer back in the pool once the socket has it (no garbage per chunk).
 */
const sendFile = (file: string, start: number, end: number, response: ServerResponse, slot: Slot) => {
  open(file, "r", (error, fd) => {
    if (error) { response.destroy(); return }
    let position = start
    let buffers = 2
    let reading = false
    let closed = false
    const close = () => { if (!closed) { closed = true; closeFd(fd, () => {}) } }
    response.on("close", close)
    response.on("drain", slot.unblocked)
    const pump = () => {
      if (reading || buffers === 0 || position > end || response.destroyed) return
      reading = true
      buffers--
      const buffer = takeBuffer()
      read(fd, buffer, 0, Math.min(fileChunk, end - position + 1), position, (error, n) => {
        reading = false
        if (error || n === 0) { giveBuffer(buffer); close(); response.destroy(); return }
        position += n
        const last = position > end
        const ok = response.write(buffer.subarray(0, n), () => { giveBuffer(buffer); buffers++; pump() })
        if (!ok) slot.blocked()
        if (last) { response.end(); close() } else pump()
      })
    }
    pump()
  })
}

/** The request handler for the store of the context: a Node `(request, response)` function. */
export const makeCacheHandler = (options: Omit<ServeOptions, "host" | "port">) => Effect.gen(function*() {
  const context = yield* Effect.context<StoreRead>()
  const store = Context.get(context, StoreRead)
  const run = Effect.runCallbackWith(context)
  const compression = options.compression ?? "none"
  const maxNars = options.maxConcurrentNars ?? 32
  const slots = makeSlots(maxNars, options.stallMs ?? 2000)
  const madeSlots = makeSlots(Math.min(maxNars, options.maxConcurrentMadeNars ?? (compression === "none" ? 8 : 4)), options.stallMs ?? 2000)
  const level = options.compressionLevel ?? (compression === "zstd" ? 1 : undefined)
  const compressOptions = level === undefined ? {} : { level }
  const cacheInfo = Buffer.from(CacheInfo.print({ storeDir: store.storeDir, wantMassQuery: true, priority: options.priority ?? 30 }))

  const servedNar = (path: StorePath.StorePath, info: PathInfo): Effect.Effect<ServedNar, StoreError> => {
    if (store.storedNar) {
      return Effect.flatMap(store.storedNar(path, compression), ({ feed, ...stored }) => isCompression(stored.compression)
        ? Effect.succeed({ ...stored, compression: stored.compression, feedAsIs: feed })
        : Effect.fail(new StoreCorrupt({ store: store.uri, reason: `${StorePath.print(path, store.storeDir)} uses unknown compression '${stored.compression}'` })))
    }
    const nar = store.narFromPath(path)
    const forEach = store.forEachNarChunk
    const feed = forEach && ((consume: (chunk: Uint8Array) => Promise<"stop" | undefined>) => forEach(path, consume))
    return Effect.succeed(compression === "none"
      ? { compression, fileHash: info.narHash, fileSize: info.narSize, bytes: nar, feed }
      : { compression, bytes: compress(nar, compression, compressOptions), feed })
  }

  const pathOf = (hashPart: string) => Effect.flatMap(store.queryPathFromHashPart(hashPart), (path) =>
    Option.isNone(path) ? Effect.succeed(Option.none<{ path: StorePath.StorePath; info: PathInfo }>())
      : Effect.map(store.queryPathInfo(path.value), (info) => Option.some({ path: path.value, info })))

  const narInfoText = (hashPart: string) => Effect.gen(function*() {
    const found = yield* pathOf(hashPart)
    if (Option.isNone(found)) return Option.none<Buffer>()
    const served = yield* servedNar(found.value.path, found.value.info)
    const url = `nar/${hashPart}${extension[served.compression]}`
    const ni = fromPathInfo(found.value.info, { url, compression: served.compression, fileHash: served.fileHash, fileSize: served.fileSize }, store.storeDir)
    return Option.some(Buffer.from(NarInfo.print((options.secretKeys ?? []).reduce((acc, key) => NarInfo.sign(acc, key, store.storeDir), ni))))
  })

  /**
   * Rendered narinfos by hash part: a lookup answered again within `narInfoCacheMs` is one map
   * lookup and one write, with no store query, no rendering, no signing and no Effect run. Maps keep
   * insertion order, so re-inserting on use makes the first key the least recently used.
   */
  const renderedTtl = options.narInfoCacheMs ?? 10_000
  const maxRenderedBytes = options.narInfoCacheBytes ?? 4 << 20
  const rendered = new Map<string, { readonly body: Buffer; readonly until: number }>()
  let renderedBytes = 0
  const forget = (hashPart: string) => {
    const entry = rendered.get(hashPart)
    if (entry) { rendered.delete(hashPart); renderedBytes -= entry.body.length }
  }
  const renderedNarInfo = (hashPart: string): Buffer | undefined => {
    const entry = rendered.get(hashPart)
    if (entry === undefined) return undefined
    rendered.delete(hashPart)
    if (entry.until < Date.now()) { renderedBytes -= entry.body.length; return undefined }
    rendered.set(hashPart, entry)
    return entry.body
  }
  const keepNarInfo = (hashPart: string, body: Buffer) => {
    if (renderedTtl <= 0 || body.length > maxRenderedBytes) return
    forget(hashPart)
    rendered.set(hashPart, { body, until: Date.now() + renderedTtl })
    renderedBytes += body.length
    while (renderedBytes > maxRenderedBytes) forget(rendered.keys().next().value!)
  }

  /** A realisation's `.doi` JSON, signed with the server's keys. */
  const realisationText = (name: string) => Effect.gen(function*() {
    let decoded: string
    try { decoded = decodeURIComponent(name) } catch { return Option.none<Buffer>() }
    const id = Realisation.parseDrvOutput(decoded)
    if (id._tag === "Failure" || store.queryRealisation === undefined) return Option.none<Buffer>()
    const found = yield* store.queryRealisation(id.success)
    if (Option.isNone(found)) return Option.none<Buffer>()
    const signed = (options.secretKeys ?? []).reduce((r, key) => Realisation.sign(r, key), found.value)
    return Option.some(Buffer.from(Realisation.print(signed)))
  })

  /** The NAR file a `/nar/…` URL names: the one the narinfo names, or the plain NAR, which is always there. */
  const narFile = (hashPart: string, wanted: Compression) => Effect.gen(function*() {
    const found = yield* pathOf(hashPart)
    if (Option.isNone(found)) { forget(hashPart); return Option.none<ServedNar>() }
    const served = yield* servedNar(found.value.path, found.value.info)
    if (wanted === served.compression) return Option.some(served)
    if (wanted === "none") return Option.some<ServedNar>({ compression: "none", fileSize: found.value.info.narSize, bytes: store.narFromPath(found.value.path) })
    return Option.none<ServedNar>()
  })

  const text = (response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    response.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), ...headers })
    response.end(body)
  }
  const notFound = (response: ServerResponse) => text(response, 404, "404 not found\n")
  const failed = (response: ServerResponse, error: unknown) => {
    if (response.headersSent) { response.destroy(); return }
    if ((error as { _tag?: string })?._tag === "PathNotValid") return notFound(response)
    text(response, 500, `500 ${error instanceof Error ? error.message : String(error)}\n`)
  }
  /** Runs a lookup, then `respond` with its value; failures become 404/500. */
  const lookup = <A>(effect: Effect.Effect<A, StoreError>, response: ServerResponse, respond: (value: A) => void) =>
    run(effect, { onExit: (exit) => Exit.isSuccess(exit) ? respond(exit.value) : failed(response, Cause.squash(exit.cause)) })

  const sendNarInfo = (response: ServerResponse, body: Buffer, head: boolean) => {
    response.writeHead(200, { "content-type": "text/x-nix-narinfo", "content-length": body.length })
    response.end(head ? undefined : body)
  }

  const sendNar = (request: IncomingMessage, response: ServerResponse, file: ServedNar, head: boolean) => {
    const size = file.fileSize
    const headers: Record<string, string> = { "content-type": "application/x-nix-nar", "accept-ranges": size !== undefined ? "bytes" : "none" }
    let start = 0
    let end = -1
    let status = 200
    if (size !== undefined) {
      const range = parseRange(request.headers.range, size)
      if (range === "invalid") return text(response, 416, "416 range not satisfiable\n", { "content-range": `bytes */${size}` })
      ;({ start, end } = range === "all" ? { start: 0, end: size - 1 } : range)
      if (range !== "all") { status = 206; headers["content-range"] = `bytes ${start}-${end}/${size}` }
      headers["content-length"] = String(end - start + 1)
    }
    if (head) { response.writeHead(status, headers); response.end(); return }
    run(file.file !== undefined && size !== undefined ? slots.take : madeSlots.take, { onExit: (exit) => {
      if (!Exit.isSuccess(exit)) return failed(response, "no transfer slot")
      const slot = exit.value
      response.on("close", slot.release)
      if (response.destroyed) return slot.release()
      response.writeHead(status, headers)
      if (size === 0) { response.end(); return }
      if (file.file !== undefined && size !== undefined) return sendFile(file.file, start, end, response, slot)
      if (file.feedAsIs !== undefined && status === 200) {
        return run(sendFed(file.feedAsIs, response, slot), { onExit: (sent) => { if (!Exit.isSuccess(sent)) response.destroy() } })
      }
      if (file.feed !== undefined && status === 200) {
        const sending = file.compression === "none" ? sendFed(file.feed, response, slot) : sendFedCompressed(file.feed, file.compression, compressOptions, response, slot)
        return run(sending, { onExit: (sent) => { if (!Exit.isSuccess(sent)) response.destroy() } })
      }
      const bytes = size !== undefined && status === 206 ? slice(file.bytes, start, end) : file.bytes
      run(sendStream(bytes, response, slot), { onExit: (sent) => { if (!Exit.isSuccess(sent)) response.destroy() } })
    } })
  }

  return (request: IncomingMessage, response: ServerResponse): void => {
    if (options.accessLog) {
      const started = Date.now()
      response.on("finish", () => options.accessLog!(`${request.method} ${request.url} ${response.statusCode} ${Date.now() - started}ms`))
    }
    for (const mount of options.mounts ?? []) if (mount(request, response)) return
    const method = request.method
    if (method !== "GET" && method !== "HEAD") return text(response, 405, "405 method not allowed\n", { allow: "GET, HEAD" })
    const head = method === "HEAD"
    const url = request.url ?? "/"
    const pathname = url.includes("?") ? url.slice(0, url.indexOf("?")) : url
    if (pathname === "/nix-cache-info") {
      response.writeHead(200, { "content-type": "text/x-nix-cache-info", "content-length": cacheInfo.length })
      response.end(head ? undefined : cacheInfo)
      return
    }
    const narinfo = narinfoRe.exec(pathname)
    if (narinfo) {
      const hashPart = narinfo[1]!
      const known = renderedNarInfo(hashPart)
      if (known !== undefined) return sendNarInfo(response, known, head)
      lookup(narInfoText(hashPart), response, (found) => {
        if (Option.isNone(found)) return notFound(response)
        keepNarInfo(hashPart, found.value)
        sendNarInfo(response, found.value, head)
      })
      return
    }
    const realisation = realisationRe.exec(pathname)
    if (realisation) {
      lookup(realisationText(realisation[1]!), response, (found) => {
        if (Option.isNone(found)) return notFound(response)
        response.writeHead(200, { "content-type": "application/json", "content-length": found.value.length })
        response.end(head ? undefined : found.value)
      })
      return
    }
    const nar = narRe.exec(pathname)
    if (nar) {
      const wanted = (Object.entries(extension) as Array<[Compression, string]>).find(([, e]) => e === (nar[2] ? `.nar${nar[2]}` : ".nar"))![0]
      lookup(narFile(nar[1]!, wanted), response, (file) => Option.isNone(file) ? notFound(response) : sendNar(request, response, file.value, head))
      return
    }
    if (hashPartRe.test(pathname.slice(1)) || pathname === "/" || pathname.startsWith("/nar/")) return notFound(response)
    text(response, 400, "400 bad request: not a binary-cache file name\n")
  }
})

/** The server could not listen where it was asked to. */
export class ListenFailed extends Schema.TaggedError<ListenFailed>()("ListenFailed", {
  address: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `cannot listen on ${this.address}: ${this.reason}` }
}

/** Serves the store of the context until the scope closes; gives the bound address (port 0 picks a free one). */
export const serveCache = (options: ServeOptions): Effect.Effect<AddressInfo, ListenFailed, StoreRead | Scope.Scope> => Effect.gen(function*() {
  const handler = yield* makeCacheHandler(options)
  const idle = options.idleTimeoutMs ?? 60_000
  const server = yield* Effect.acquireRelease(
    Effect.callback<Server, ListenFailed>((resume) => {
      const server = createServer({ keepAliveTimeout: idle, requestTimeout: idle }, handler)
      server.on("connection", (socket) => socket.setTimeout(idle, () => socket.destroy()))
      const fail = (e: NodeJS.ErrnoException) => resume(Effect.fail(new ListenFailed({
        address: `${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`,
        reason: e.code === "EADDRINUSE" ? "the address is in use (another server listens there)"
          : e.code === "EADDRNOTAVAIL" ? "no network interface of this machine has that address"
          : e.code === "EACCES" ? "permission denied (ports below 1024 need root)"
          : e.message
      })))
      server.once("error", fail)
      server.listen(options.port, options.host, () => { server.off("error", fail); resume(Effect.succeed(server)) })
    }),
    (server) => Effect.callback<void>((resume) => {
      server.close(() => resume(Effect.void))
      server.closeAllConnections()
    })
  )
  return server.address() as AddressInfo
})

