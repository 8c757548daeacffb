/** Store URI openers for `file://` and `http(s)://` binary caches, and their typed layers. */
import { Duration, Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import { tmpdir } from "node:os"
import { BadStoreUri } from "../../services/store-errors.ts"
import { openerLayer, readWriteContext, type StoreOpener } from "../../services/registry.ts"
import type { StoreError } from "../../services/store-errors.ts"
import type { StoreRead } from "../../services/store-read.ts"
import type { StoreWrite } from "../../services/store-write.ts"
import { readOnlyOption, secondsOption } from "../../services/store-uri.ts"
import { makeBinaryCacheStore } from "./binary-cache-store.ts"
import { makeFileBlobs } from "./file-blobs.ts"
import { makeHttpBlobs } from "./http-blobs.ts"
import { parseBinaryCacheOptions } from "./options.ts"

export const openFileCache: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  const options = yield* parseBinaryCacheOptions(uri)
  if (!uri.location.startsWith("/")) {
    return yield* new BadStoreUri({ uri: uri.raw, reason: "a file cache needs an absolute path: file:///path/to/cache" })
  }
  const dir = resolve(decodeURIComponent(uri.location))
  yield* Effect.try({ try: () => mkdirSync(dir, { recursive: true }), catch: () => new BadStoreUri({ uri: uri.raw, reason: `cannot create ${dir}` }) })
  const store = yield* makeBinaryCacheStore(makeFileBlobs(uri.raw, dir), { ...options, writable: true })
  return readWriteContext(store.read, store.write)
}))

export const openHttpCache: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  const options = yield* parseBinaryCacheOptions(uri, ["read-only", "timeout"])
  const spoolDir = join(tmpdir(), "b3-upload-spool")
  const seconds = yield* Effect.fromResult(secondsOption(uri, "timeout"))
  // `timeout`: seconds a request may wait for an answer or for more data before it fails (and is retried).
  const blobs = yield* makeHttpBlobs(uri.raw, `${uri.scheme}://${uri.location}`, {
    spoolDir, ...(seconds !== undefined ? { timeout: Duration.seconds(seconds) } : {})
  })
  const writable = !readOnlyOption(uri)
  const store = yield* makeBinaryCacheStore(blobs, { ...options, writable })
  return readWriteContext(store.read, writable ? store.write : undefined)
}))

const withQuery = (base: string, query: string) => query === "" ? base : `${base}?${query}`

/** A `file://` cache in `dir` (`query`: the URI's options, e.g. `compression=xz&secret-key=FILE`): reads and writes. */
export const fileCacheLayer = (dir: string, query = ""): Layer.Layer<StoreRead | StoreWrite, StoreError | BadStoreUri> =>
  openerLayer(openFileCache, withQuery(`file://${resolve(dir)}`, query))

/** An `http(s)://` cache, read-only. */
export const httpCacheLayer = (url: string, query = ""): Layer.Layer<StoreRead, StoreError | BadStoreUri> =>
  openerLayer(openHttpCache, withQuery(url, query === "" ? "read-only=1" : `${query}&read-only=1`))

/** An `http(s)://` cache that takes PUT (`nix copy --to http://…`): reads and writes. */
export const writableHttpCacheLayer = (url: string, query = ""): Layer.Layer<StoreRead | StoreWrite, StoreError | BadStoreUri> =>
  openerLayer(openHttpCache, withQuery(url, query))
