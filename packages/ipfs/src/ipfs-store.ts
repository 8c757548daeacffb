/**
 * The IPFS store: Nix's binary-cache protocol (binary-cache-store.ts: narinfos, signing, streamed
 * NAR checks) over a UnixFS directory tree in an in-process Helia node (ipfs-blobs.ts).
 *
 * - Writable (`ipfs://?repo=DIR`): the repo's published root is the store's version; every path
 *   added publishes a new root. NARs are stored uncompressed (compression would defeat the
 *   per-file dedup), each as a file DAG whose leaves follow the files inside it.
 * - Read-only (`ipfs://<root CID>?…`): that version of some store, its blocks read from the local
 *   repo or fetched from peers with bitswap. Only `read` is offered.
 *
 * Either way a NAR read back is checked against the narinfo's NarHash/NarSize as it streams, and
 * with trusted keys the store serves only paths they signed (or content-addressed ones).
 */
import { Effect, type Scope } from "effect"
import { CID } from "multiformats/cid"
import { type Signature, BadStoreUri, StoreIoError, type StoreError, type StoreReadApi, type StoreWriteApi, makeBinaryCacheStore } from "b3/plugin"
import { ipfsNode } from "./helia-node.ts"
import { makeIpfsBlobs } from "./ipfs-blobs.ts"
import { lockRepo, publishRoot, readRoot } from "./repo.ts"
import { trustedRead } from "./trusted-read.ts"

export interface IpfsStoreOptions {
  /** The URI, for messages. */
  readonly uri: string
  /** The repo directory (blocks, datastore, root pointer); optional only for a read-only store. */
  readonly repo?: string | undefined
  /** Open this root read-only instead of the repo's own (writable) root. */
  readonly root?: string | undefined
  readonly listen?: ReadonlyArray<string>
  readonly peers?: ReadonlyArray<string>
  readonly storeDir?: string | undefined
  /** Sign every path written with these keys. */
  readonly secretKeys?: ReadonlyArray<Signature.SecretKey>
  /** Serve only paths signed by these keys (or content-addressed); undefined: no check here. */
  readonly trustedKeys?: ReadonlyArray<Signature.PublicKey> | undefined
  /** How long a read may wait for blocks from peers (default 60 s). */
  readonly timeoutMs?: number
}

export interface IpfsStore {
  readonly read: StoreReadApi
  /** Absent for a store opened by root CID. */
  readonly write: StoreWriteApi | undefined
  /** The store's current version. */
  readonly root: () => string
  /** Where peers can reach this node (empty without `listen`). */
  readonly addresses: () => ReadonlyArray<string>
}

const parseCid = (uri: string, text: string, what: string): Effect.Effect<CID, BadStoreUri> =>
  Effect.try({ try: () => CID.parse(text), catch: (e) => new BadStoreUri({ uri, reason: `${what} '${text}' is not a CID: ${e instanceof Error ? e.message : String(e)}` }) })

export const openIpfsStore = (options: IpfsStoreOptions): Effect.Effect<IpfsStore, StoreError | BadStoreUri, Scope.Scope> =>
  Effect.gen(function*() {
    const { uri, repo } = options
    const writable = options.root === undefined
    if (writable && repo === undefined) return yield* new BadStoreUri({ uri, reason: "a writable IPFS store needs repo=DIR (or open a root read-only: ipfs://<CID>?…)" })
    const given = options.root === undefined ? undefined : yield* parseCid(uri, options.root, "the root")
    if (writable) yield* lockRepo(uri, repo!)
    const node = yield* ipfsNode(uri, { repo, listen: options.listen ?? [], peers: options.peers ?? [] })
    const published = writable ? yield* readRoot(uri, repo!) : undefined
    const root = given ?? (published !== undefined ? yield* parseCid(uri, published, `the root in ${repo}/root`)
      : yield* Effect.tryPromise({ try: () => node.fs.addDirectory(), catch: (e) => new StoreIoError({ store: uri, operation: "create the empty root", reason: String(e) }) }))
    const blobs = yield* makeIpfsBlobs({
      uri, helia: node.helia, fs: node.fs, root, offline: node.offline, timeoutMs: options.timeoutMs ?? 60_000,
      publish: writable ? (cid) => publishRoot(uri, repo!, cid.toString()) : undefined
    })
    const store = yield* makeBinaryCacheStore(blobs, {
      compression: "none", writable, secretKeys: options.secretKeys ?? [],
      ...(options.storeDir !== undefined ? { storeDir: options.storeDir } : {})
    })
    const read = options.trustedKeys === undefined ? store.read : trustedRead(store.read, options.trustedKeys)
    return { read, write: writable ? store.write : undefined, root: () => blobs.root().toString(), addresses: node.addresses }
  })
