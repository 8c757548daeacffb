/**
 * The `ipfs://` store URI:
 *
 *   ipfs://?repo=DIR[&listen=MULTIADDR][&peer=MULTIADDR…][&secret-key=FILE][&trusted-public-keys=KEYS]
 *   ipfs://<root CID>?[repo=DIR][&peer=MULTIADDR…][&trusted-public-keys=KEYS]
 *
 * The first is the repo's own store, writable; the second one version of a store, read-only
 * (blocks from the repo, if given, or fetched from the peers). Multiaddrs are loopback TCP only:
 * `/ip4/127.0.0.1/tcp/PORT[/p2p/PEERID]`. Other options: `store` (the store dir), `timeout`
 * (seconds a read waits for peers, default 60).
 *
 * Helia and libp2p are loaded only here, when an ipfs:// store is opened (ipfs-store.ts is a
 * separate chunk of the CLI bundle and the IPFS packages stay in node_modules).
 */
import { Effect, Layer, Result } from "effect"
import { resolve } from "node:path"
import { Signature, BadStoreUri, StoreIoError, openerLayer, readWriteContext, type StoreOpener, type StoreError, type StoreRead, type StoreWrite, checkParams, secondsOption, trustedKeysOption, type StoreUri, parseBinaryCacheOptions } from "b3/plugin"
import type { IpfsStoreOptions } from "./ipfs-store.ts"

export const ipfsParams = ["repo", "listen", "peer", "secret-key", "trusted-public-keys", "store", "timeout"] as const

const loopbackMultiaddrRe = /^\/ip4\/127\.\d{1,3}\.\d{1,3}\.\d{1,3}\/tcp\/\d{1,5}(\/p2p\/[1-9A-HJ-NP-Za-km-z]+)?$/

/** The store options a URI gives (nothing is opened). */
export const ipfsOptionsFromUri = (uri: StoreUri): Effect.Effect<IpfsStoreOptions, BadStoreUri> => Effect.gen(function*() {
  const bad = (reason: string) => new BadStoreUri({ uri: uri.raw, reason })
  yield* Effect.fromResult(checkParams(uri, ipfsParams))
  const cacheOptions = yield* parseBinaryCacheOptions(uri, ipfsParams)
  const secretKeys = cacheOptions.secretKeys ?? []
  const storeDir = cacheOptions.storeDir
  const location = decodeURIComponent(uri.location).replace(/^\/+|\/+$/g, "")
  if (location.includes("/")) return yield* bad("expected ipfs://?repo=DIR or ipfs://<root CID>?…")
  const repoParam = uri.params.get("repo")
  if (repoParam === "") return yield* bad("repo= needs a directory")
  const listen = uri.params.getAll("listen")
  const peers = uri.params.getAll("peer")
  for (const address of [...listen, ...peers]) {
    if (!loopbackMultiaddrRe.test(address)) return yield* bad(`'${address}' is not a loopback TCP multiaddr (/ip4/127.0.0.1/tcp/PORT[/p2p/ID]): IPFS stores talk to 127.0.0.1 only`)
  }
  if (location === "" && repoParam === null) return yield* bad("a writable IPFS store needs repo=DIR (or open a root read-only: ipfs://<CID>?…)")
  if (location !== "" && listen.length > 0) return yield* bad("listen= is for the repo's own store (ipfs://?repo=DIR&listen=…), not a root opened by CID")
  if (location !== "" && secretKeys.length > 0) return yield* bad("secret-key= signs what is written, and a root opened by CID is read-only")
  const trustedKeys = yield* Effect.fromResult(trustedKeysOption(uri))
  const timeout = yield* Effect.fromResult(secondsOption(uri, "timeout"))
  return {
    uri: uri.raw,
    repo: repoParam === null ? undefined : resolve(repoParam),
    root: location === "" ? undefined : location,
    listen,
    peers,
    secretKeys,
    storeDir,
    trustedKeys,
    ...(timeout !== undefined ? { timeoutMs: timeout * 1000 } : {})
  }
})

/** Loads the IPFS store module (and with it Helia) on first use. */
export const loadIpfsStore = () => Effect.tryPromise({
  try: () => import("./ipfs-store.ts"),
  catch: (e) => new StoreIoError({ store: "ipfs://", operation: "load the IPFS modules", reason: String(e) })
})

export const openIpfsStore: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  const options = yield* ipfsOptionsFromUri(uri)
  const module = yield* loadIpfsStore()
  const store = yield* module.openIpfsStore(options)
  return readWriteContext(store.read, store.write)
}))

/** The repo's own IPFS store (`ipfs://?repo=DIR&…`): reads and writes. */
export const ipfsRepoLayer = (repo: string, query = ""): Layer.Layer<StoreRead | StoreWrite, StoreError | BadStoreUri> =>
  openerLayer(openIpfsStore, `ipfs://?repo=${encodeURIComponent(repo)}${query === "" ? "" : `&${query}`}`)

/** One version of an IPFS store, by its root CID (`ipfs://<CID>?…`): read-only. */
export const ipfsRootLayer = (root: string, query = ""): Layer.Layer<StoreRead, StoreError | BadStoreUri> =>
  openerLayer(openIpfsStore, `ipfs://${root}${query === "" ? "" : `?${query}`}`)
