/** Store URI openers for `file://` and `http(s)://` binary caches. */
import { Duration, Effect } from "effect"
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import { tmpdir } from "node:os"
import { BadStoreUri } from "../../services/store-errors.ts"
import type { StoreOpener } from "../../services/registry.ts"
import { makeBinaryCacheStore } from "./binary-cache-store.ts"
import { makeFileBlobs } from "./file-blobs.ts"
import { makeHttpBlobs } from "./http-blobs.ts"
import { parseBinaryCacheOptions } from "./options.ts"

export const openFileCache: StoreOpener = (uri) => Effect.gen(function*() {
  const options = yield* parseBinaryCacheOptions(uri)
  if (!uri.location.startsWith("/")) {
    return yield* new BadStoreUri({ uri: uri.raw, reason: "a file cache needs an absolute path: file:///path/to/cache" })
  }
  const dir = resolve(decodeURIComponent(uri.location))
  yield* Effect.try({ try: () => mkdirSync(dir, { recursive: true }), catch: () => new BadStoreUri({ uri: uri.raw, reason: `cannot create ${dir}` }) })
  const store = yield* makeBinaryCacheStore(makeFileBlobs(uri.raw, dir), { ...options, writable: true })
  return { read: store.read, write: store.write }
})

export const openHttpCache: StoreOpener = (uri) => Effect.gen(function*() {
  const options = yield* parseBinaryCacheOptions(uri, ["read-only", "timeout"])
  const spoolDir = join(tmpdir(), "b3-upload-spool")
  const timeoutParam = uri.params.get("timeout")
  const seconds = timeoutParam === undefined || timeoutParam === null ? undefined : Number(timeoutParam)
  if (seconds !== undefined && !(seconds > 0)) {
    return yield* new BadStoreUri({ uri: uri.raw, reason: `timeout must be a positive number of seconds, not '${timeoutParam}'` })
  }
  // `timeout`: seconds a request may wait for an answer or for more data before it fails (and is retried).
  const blobs = yield* makeHttpBlobs(uri.raw, `${uri.scheme}://${uri.location}`, {
    spoolDir, ...(seconds !== undefined ? { timeout: Duration.seconds(seconds) } : {})
  })
  const writable = uri.params.get("read-only") !== "1" && uri.params.get("read-only") !== "true"
  const store = yield* makeBinaryCacheStore(blobs, { ...options, writable })
  return { read: store.read, write: writable ? store.write : undefined }
})
