/**
 * Chunk store URIs and layers:
 *
 *   chunked+file:///dir[?index=postgresql://…][&…]    blobs in a directory, index in dir/index/chunks.sqlite
 *   chunked+s3://bucket?region=…&endpoint=…&index=FILE|postgresql://…   (blobs from the S3 plugin, @b3/s3)
 *   chunked+http(s)://host/path                         read-only: the blobs as an HTTP server serves them
 *
 * Options: `secret-key=FILE` (sign paths written), `store=/nix/store`, `pack-size=MiB` (default 32),
 * `zstd-level=N` (default 3), `repack-threshold=F` (default 0.5), `chunk-size=MIN/AVG/MAX` in KiB
 * (a new store only), `delta=0` (store new chunks whole, never as deltas against similar ones;
 * default 1), `delta-incompressible=1` (super-features also for chunks that look incompressible, so
 * that they can be deltas and bases; default 0: such chunks are stored whole, never deltas nor bases), `read-only=1`, and for S3 the `s3://` options.
 */
import { Context, Duration, Effect, Layer, Result, type Scope } from "effect"
import { StoreMaintenance } from "../../services/store-maintenance.ts"
import { createHash } from "node:crypto"
import { mkdirSync, readFileSync } from "node:fs"
import { homedir, tmpdir } from "node:os"
import { join, resolve } from "node:path"
import * as Signature from "../../core/signature.ts"
import { openerLayer, type StoreOpener } from "../../services/registry.ts"
import { BadStoreUri, type StoreError } from "../../services/store-errors.ts"
import { StoreRead } from "../../services/store-read.ts"
import { checkParams, type StoreUri } from "../../services/store-uri.ts"
import { StoreWrite } from "../../services/store-write.ts"
import type { BlobStoreOpener } from "../binary-cache/blob-store.ts"
import { makeFileBlobs } from "../binary-cache/file-blobs.ts"
import { makeHttpBlobs } from "../binary-cache/http-blobs.ts"
import { makeChunkIndex } from "./chunk-index.ts"
import { type ChunkedStore, type ChunkedStoreOptions, makeChunkedStore } from "./chunked-store.ts"
import { openPostgres, openSqlite } from "./db.ts"

export { makeChunkedStore, type ChunkedStore, type ChunkedStoreOptions } from "./chunked-store.ts"

const params = ["index", "secret-key", "store", "pack-size", "zstd-level", "repack-threshold", "chunk-size", "read-only", "delta", "delta-incompressible"] as const

/** The index a store URI names: a PostgreSQL URL, or an SQLite file. */
export const openIndex = (uri: string, index: string) => Effect.gen(function*() {
  const db = /^postgres(ql)?:\/\//.test(index) ? yield* openPostgres(uri, index) : yield* Effect.gen(function*() {
    yield* Effect.sync(() => mkdirSync(resolve(index, ".."), { recursive: true }))
    return yield* openSqlite(uri, index)
  })
  return yield* makeChunkIndex(db, uri)
})

const parseOptions = (uri: StoreUri, extra: ReadonlyArray<string>) => Effect.gen(function*() {
  const bad = (reason: string) => new BadStoreUri({ uri: uri.raw, reason })
  yield* Effect.fromResult(checkParams(uri, [...params, ...extra]))
  const number = (name: string, min: number, max: number) => {
    const v = uri.params.get(name)
    if (v === null) return Effect.succeed(undefined)
    const n = Number(v)
    return Number.isFinite(n) && n >= min && n <= max ? Effect.succeed(n) : Effect.fail(bad(`${name} must be a number from ${min} to ${max}, not '${v}'`))
  }
  const secretKeys: Array<Signature.SecretKey> = []
  const keyFile = uri.params.get("secret-key")
  if (keyFile) {
    const text = yield* Effect.try({ try: () => readFileSync(keyFile, "utf8").trim(), catch: () => bad(`cannot read secret key file '${keyFile}'`) })
    const key = Signature.parseSecretKey(text)
    if (Result.isFailure(key)) return yield* bad(`secret key file '${keyFile}': ${key.failure.reason}`)
    secretKeys.push(key.success)
  }
  const packSize = yield* number("pack-size", 0.0625, 1024)
  const zstdLevel = yield* number("zstd-level", 1, 19)
  const repackThreshold = yield* number("repack-threshold", 0, 1)
  const sizes = uri.params.get("chunk-size")
  let chunking: ChunkedStoreOptions["chunking"]
  if (sizes !== null) {
    const m = /^(\d+)\/(\d+)\/(\d+)$/.exec(sizes)
    if (!m) return yield* bad("chunk-size is MIN/AVG/MAX in KiB, e.g. 16/64/256")
    chunking = { min: Number(m[1]) * 1024, avg: Number(m[2]) * 1024, max: Number(m[3]) * 1024 }
  }
  const storeDir = uri.params.get("store")
  const readOnly = uri.params.get("read-only") === "1" || uri.params.get("read-only") === "true"
  /** A 0/1 (or false/true) parameter: undefined when absent. */
  const switchParam = (name: string) => Effect.gen(function*() {
    const value = uri.params.get(name)
    if (value === null) return undefined
    if (!["0", "1", "false", "true"].includes(value)) return yield* bad(`${name} must be 0 or 1, not '${value}'`)
    return value === "1" || value === "true"
  })
  const delta = yield* switchParam("delta")
  const deltaIncompressible = yield* switchParam("delta-incompressible")
  return {
    readOnly,
    options: {
      secretKeys,
      ...(storeDir ? { storeDir } : {}),
      ...(packSize !== undefined ? { packSize: Math.round(packSize * 1048576) } : {}),
      ...(zstdLevel !== undefined ? { zstdLevel } : {}),
      ...(repackThreshold !== undefined ? { repackThreshold } : {}),
      ...(chunking ? { chunking } : {}),
      ...(delta !== undefined ? { delta } : {}),
      ...(deltaIncompressible !== undefined ? { deltaIncompressible } : {})
    } satisfies ChunkedStoreOptions
  }
})

/** A chunk store in a local directory, its index in `dir/index/chunks.sqlite` unless told otherwise. */
export interface FileChunkStoreOptions extends Omit<ChunkedStoreOptions, "index"> {
  /** SQLite file or PostgreSQL URL of the index (default dir/index/chunks.sqlite). */
  readonly index?: string
  readonly readOnly?: boolean
  readonly uri?: string
}

export const openFileChunkStore = (dir: string, options: FileChunkStoreOptions = {}): Effect.Effect<ChunkedStore, StoreError | BadStoreUri, Scope.Scope> =>
  Effect.gen(function*() {
    const uri = options.uri ?? `chunked+file://${dir}`
    yield* Effect.try({ try: () => mkdirSync(dir, { recursive: true }), catch: () => new BadStoreUri({ uri, reason: `cannot create ${dir}` }) })
    const { index: indexLocation, readOnly, ...rest } = options
    const index = readOnly ? undefined : yield* openIndex(uri, indexLocation ?? join(dir, "index", "chunks.sqlite"))
    return yield* makeChunkedStore(makeFileBlobs(uri, dir), { ...rest, ...(index ? { index } : {}) })
  })

/** The store's services: StoreRead, and StoreWrite and StoreMaintenance when it has its index. */
export const storeContext = (store: ChunkedStore): Context.Context<StoreRead> => {
  const read = Context.make(StoreRead, store.read)
  if (!store.write || !store.maintenance) return read
  return read.pipe(Context.add(StoreWrite, store.write), Context.add(StoreMaintenance, store.maintenance)) as Context.Context<StoreRead>
}

const opened = storeContext

export const openChunkedFile: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  const { readOnly, options } = yield* parseOptions(uri, [])
  if (!uri.location.startsWith("/")) return yield* new BadStoreUri({ uri: uri.raw, reason: "a chunk store in a directory needs an absolute path: chunked+file:///path" })
  const dir = resolve(decodeURIComponent(uri.location))
  const index = uri.params.get("index")
  return opened(yield* openFileChunkStore(dir, { ...options, readOnly, uri: uri.raw, ...(index ? { index } : {}) }))
}))

export const openChunkedHttp: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  const { options } = yield* parseOptions(uri, ["timeout"])
  const scheme = uri.scheme.replace(/^chunked\+/, "")
  const seconds = uri.params.get("timeout")
  const blobs = yield* makeHttpBlobs(uri.raw, `${scheme}://${uri.location}`, {
    spoolDir: join(tmpdir(), "b3-upload-spool"), ...(seconds ? { timeout: Duration.seconds(Number(seconds)) } : {})
  })
  return opened(yield* makeChunkedStore(blobs, options))
}))

/**
 * `chunked+SCHEME://…`: a chunk store over the blobs another store type keeps (`chunked+s3://`, with
 * the S3 plugin's blobs). The index of such a store lives with the writer: `index=FILE|postgresql://…`,
 * else ~/.cache/b3/chunked/<hash of the URI>.sqlite.
 */
export const openChunkedOver = (blobStore: BlobStoreOpener): StoreOpener => (uri) => Layer.effectContext(Effect.gen(function*() {
  const { readOnly, options } = yield* parseOptions(uri, blobStore.params)
  const scheme = uri.scheme.replace(/^chunked\+/, "")
  const blobUri: StoreUri = { ...uri, scheme, params: new URLSearchParams([...uri.params].filter(([k]) => blobStore.params.includes(k))) }
  const blobs = yield* blobStore.open(blobUri, { readOnly, spoolDir: join(tmpdir(), "b3-upload-spool") })
  const indexLocation = uri.params.get("index")
    ?? join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "b3", "chunked", `${createHash("sha256").update(uri.raw.split("?")[0] + (uri.params.get("endpoint") ?? "")).digest("hex").slice(0, 16)}.sqlite`)
  const index = readOnly ? undefined : yield* openIndex(uri.raw, indexLocation)
  return opened(yield* makeChunkedStore(blobs, { ...options, ...(index ? { index } : {}) }))
}))

/** A chunk store in a directory (index in it, or `options.index`): reads, writes, deletes, collects and repacks. */
export const layer = (dir: string, options: Omit<FileChunkStoreOptions, "readOnly"> = {}): Layer.Layer<StoreRead | StoreWrite | StoreMaintenance, StoreError | BadStoreUri> =>
  Layer.effectContext(Effect.map(openFileChunkStore(dir, options), (store) => storeContext(store) as Context.Context<StoreRead | StoreWrite | StoreMaintenance>))

/** The blobs of a chunk store as an HTTP server serves them: read-only. */
export const httpLayer = (url: string): Layer.Layer<StoreRead, StoreError | BadStoreUri> =>
  openerLayer(openChunkedHttp, `chunked+${url}`)
