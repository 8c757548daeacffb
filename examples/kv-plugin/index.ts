/**
 * A worked example of a b3 plugin: `kv:///PATH/TO/FILE.sqlite` stores, a Nix binary cache (narinfos,
 * NARs, nix-cache-info) kept as rows of one SQLite file instead of files in a directory.
 *
 *   B3_PLUGINS=./examples/kv-plugin/index.ts b3 copy --from /tmp/r --to kv:///tmp/cache.sqlite --closure /nix/store/…-hello
 *   B3_PLUGINS=./examples/kv-plugin/index.ts b3 path-info --store kv:///tmp/cache.sqlite /nix/store/…-hello
 *
 * The whole backend is the BlobStore below (get, put and test named blobs); b3's binary-cache layer
 * speaks Nix's cache format on top of it, with compression, signatures and every check. The store
 * passes b3's conformance suite (test/stores/kv-plugin.test.ts).
 * As an npm package, this file is the package's entry point and `b3/plugin` its only import from b3.
 */
import { Effect, Layer, Option, Stream } from "effect"
import { DatabaseSync } from "node:sqlite"
import { readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { isAbsolute } from "node:path"
import {
  type B3Plugin, type BlobStore, BadStoreUri, makeBinaryCacheStore, parseBinaryCacheOptions, readOnlyOption,
  readWriteContext, StoreIoError, type StoreOpener
} from "b3/plugin"

/** Blobs as rows of a SQLite table; the database is closed when the store's scope ends. */
const sqliteBlobs = (file: string, uri: string) => Effect.acquireRelease(
  Effect.try({
    try: () => {
      const db = new DatabaseSync(file)
      db.exec("CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, type TEXT NOT NULL, data BLOB NOT NULL)")
      return db
    },
    catch: (e) => new StoreIoError({ store: uri, operation: "open", reason: String(e) })
  }),
  (db) => Effect.sync(() => db.close())
).pipe(Effect.map((db): BlobStore => {
  const io = <A>(operation: string, f: () => A) =>
    Effect.try({ try: f, catch: (e) => new StoreIoError({ store: uri, operation, reason: String(e) }) })
  const get = db.prepare("SELECT data FROM blobs WHERE key = ?")
  const put = db.prepare("INSERT OR REPLACE INTO blobs (key, type, data) VALUES (?, ?, ?)")
  const getBytes = (key: string) => io(`read ${key}`, () => {
    const row = get.get(key) as { data: Uint8Array } | undefined
    return row ? Option.some(row.data) : Option.none()
  })
  const putBytes = (key: string, bytes: Uint8Array, type: string) => io(`write ${key}`, () => { put.run(key, type, bytes) })
  return {
    uri,
    spoolDir: tmpdir(),
    exists: (key) => Effect.map(getBytes(key), Option.isSome),
    getBytes,
    getStream: (key) => Stream.unwrap(Effect.flatMap(getBytes(key), (found) => Option.isSome(found)
      ? Effect.succeed(Stream.make(found.value))
      : Effect.fail(new StoreIoError({ store: uri, operation: `read ${key}`, reason: "no such blob" })))),
    putBytes,
    // the binary-cache layer writes a NAR to a spool file first; the blob takes its bytes and the file goes
    putFile: (key, file, type) => Effect.flatMap(io(`read ${file}`, () => readFileSync(file)), (bytes) =>
      Effect.ensuring(putBytes(key, bytes, type), Effect.sync(() => rmSync(file, { force: true }))))
  }
}))

/** Opens `kv:///FILE.sqlite?compression=…&secret-key=…&read-only=true` (the usual binary-cache options). */
export const openKvStore: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  const options = yield* parseBinaryCacheOptions(uri, ["read-only"])
  if (!isAbsolute(uri.location)) return yield* new BadStoreUri({ uri: uri.raw, reason: "expected kv:///ABSOLUTE/PATH.sqlite" })
  const writable = !readOnlyOption(uri)
  const blobs = yield* sqliteBlobs(uri.location, uri.raw)
  const store = yield* makeBinaryCacheStore(blobs, { ...options, writable })
  return readWriteContext(store.read, writable ? store.write : undefined)
}))

const plugin: B3Plugin = { name: "b3-kv-example", schemes: { kv: openKvStore } }
export default plugin
