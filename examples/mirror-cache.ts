/**
 * Mirror a binary cache into another store: every path it has (or the closures of the paths
 * given), checked against trusted signing keys on the way.
 *
 *   B3_TRUSTED_PUBLIC_KEYS="$(cat key.pub)" b3 run examples/mirror-cache.ts --cache file:///srv/cache --store /tmp/mirror
 *   b3 run examples/mirror-cache.ts --cache http://127.0.0.1:5000 --store file:///srv/mirror -- /nix/store/…-hello
 *
 * Without paths, the cache must be a `file://` cache: its `.narinfo` files say what it holds.
 * Paths signed by none of the keys in B3_TRUSTED_PUBLIC_KEYS (and not content-addressed) are
 * refused. Prints `{ copied, skipped }`.
 */
import { Effect, FileSystem } from "effect"
import { Cache, copyPaths, Signature, StorePath, StoreRead, StoreWrite, Unsupported } from "b3"

/** The store paths a file:// cache holds, from its `<hash>.narinfo` files. */
const listFileCache = (uri: string) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const cache = yield* Cache
  const dir = decodeURIComponent(new URL(uri).pathname)
  const hashParts = (yield* fs.readDirectory(dir)).filter((name) => name.endsWith(".narinfo")).map((name) => name.slice(0, -".narinfo".length))
  const found = yield* Effect.forEach(hashParts, (hashPart) => cache.read.queryPathFromHashPart(hashPart))
  return found.flatMap((path) => path._tag === "Some" ? [path.value] : [])
})

export default (args: ReadonlyArray<string>) => Effect.gen(function*() {
  const cache = yield* Cache
  const target = { read: yield* StoreRead, write: yield* StoreWrite }
  const storeDir = cache.read.storeDir
  const trustedKeys = yield* Effect.forEach((process.env.B3_TRUSTED_PUBLIC_KEYS ?? "").split(/\s+/).filter((k) => k !== ""),
    (key) => Effect.fromResult(Signature.parsePublicKey(key)))

  const paths = args.length > 0
    ? yield* Effect.forEach(args, (arg) => Effect.fromResult(StorePath.parse(arg, storeDir)))
    : cache.read.uri.startsWith("file://")
    ? yield* listFileCache(cache.read.uri)
    : yield* new Unsupported({ store: cache.read.uri, operation: "listing its paths (name the paths to mirror after --)" })
  yield* Effect.log(`mirroring ${paths.length} path(s) and their closures from ${cache.read.uri}`)

  const result = yield* copyPaths(cache.read, target, paths, { closure: true, checkSigs: true, trustedKeys, concurrency: 8 })
  const print = (p: StorePath.StorePath) => StorePath.print(p, storeDir)
  return { copied: result.copied.map(print), skipped: result.skipped.map(print) }
})
