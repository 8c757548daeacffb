/**
 * An in-process Helia node, started and stopped as a Scope resource. Blocks live in
 * `<repo>/blocks` (blockstore-fs), Helia's datastore in `<repo>/datastore` (datastore-fs); without
 * a repo both are in memory.
 *
 * Networking is off unless the store is given `listen` or `peer` addresses, and then it is only
 * libp2p over TCP on 127.0.0.0/8 (noise, yamux, identify, bitswap): no bootstrap list, no DHT,
 * no mDNS, no autoNAT/UPnP/relay, no delegated routing or HTTP gateways. A connection gater
 * refuses any address outside loopback, both ways. Peers are dialled at start and kept; blocks
 * are fetched from them with bitswap (and verified against their CIDs by Helia).
 *
 * Helia is loaded when a node starts: Helia's own class without the `helia` package's default
 * libp2p configuration (whose WebRTC, DHT and relay modules take a second to load, and which the
 * published plugin leaves out altogether: see scripts/build.ts), and libp2p only when networking is on.
 */
import type { UnixFS } from "@helia/unixfs"
import type { Libp2p, PrivateKey } from "@libp2p/interface"
import { Effect } from "effect"
import type { Helia, HeliaInit } from "helia"
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { StoreIoError } from "b3/plugin"
import { loadHeliaClass } from "./helia-class.ts"

export interface IpfsNodeOptions {
  /** The repository directory; none: blocks in memory. */
  readonly repo?: string | undefined
  /** Multiaddrs to listen on (`/ip4/127.0.0.1/tcp/PORT`, port 0 for any). */
  readonly listen: ReadonlyArray<string>
  /** Multiaddrs of peers to connect to and fetch blocks from. */
  readonly peers: ReadonlyArray<string>
}

export interface IpfsNode {
  readonly helia: Helia
  readonly fs: UnixFS
  /** No networking: a block that is not local fails at once instead of being asked for. */
  readonly offline: boolean
  /** The addresses peers can dial, each ending in `/p2p/<peer id>`. */
  readonly addresses: () => ReadonlyArray<string>
}

const isLoopback = (address: { toString(): string }) => /^\/ip4\/127\./.test(address.toString())

/** The node's libp2p key, kept in the repo so its peer id stays the same across runs. */
const peerKey = async (repo: string | undefined): Promise<PrivateKey> => {
  const keys = await import("@libp2p/crypto/keys")
  const file = repo === undefined ? undefined : join(repo, "peer-key")
  if (file && existsSync(file)) return keys.privateKeyFromProtobuf(readFileSync(file))
  const key = await keys.generateKeyPair("Ed25519")
  if (file) {
    writeFileSync(`${file}.tmp`, keys.privateKeyToProtobuf(key), { mode: 0o600 })
    renameSync(`${file}.tmp`, file)
  }
  return key
}

const startLibp2p = async (options: IpfsNodeOptions, helia: Helia): Promise<Libp2p> => {
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }, { identify }] = await Promise.all([
    import("libp2p"),
    import("@libp2p/tcp"),
    import("@chainsafe/libp2p-noise"),
    import("@chainsafe/libp2p-yamux"),
    import("@libp2p/identify")
  ])
  const libp2p = await createLibp2p({
    privateKey: await peerKey(options.repo),
    datastore: helia.datastore,
    addresses: { listen: [...options.listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify() },
    connectionGater: {
      denyDialMultiaddr: (address) => !isLoopback(address),
      denyInboundConnection: (connection) => !isLoopback(connection.remoteAddr)
    }
  })
  // @helia/bitswap finds the node's libp2p here (as @helia/libp2p would have put it).
  Object.defineProperty(helia, "libp2p", { value: libp2p, enumerable: true })
  const { withBitswap } = await import("@helia/bitswap")
  withBitswap(helia as Parameters<typeof withBitswap>[0])
  return libp2p
}

const start = async (options: IpfsNodeOptions): Promise<IpfsNode> => {
  const [Helia, { unixfs }] = await Promise.all([loadHeliaClass(), import("@helia/unixfs")])
  const init: HeliaInit = { blockBrokers: [], routers: [] }
  if (options.repo !== undefined) {
    const [{ FsBlockstore }, { FsDatastore }] = await Promise.all([
      import("blockstore-fs"),
      import("datastore-fs")
    ])
    mkdirSync(options.repo, { recursive: true })
    const blockstore = new FsBlockstore(join(options.repo, "blocks"))
    const datastore = new FsDatastore(join(options.repo, "datastore"))
    await blockstore.open()
    await datastore.open()
    Object.assign(init, { blockstore, datastore })
  }
  const helia = new Helia({ name: "b3", version: "0.1.0", ...init })
  const networked = options.listen.length > 0 || options.peers.length > 0
  let libp2p: Libp2p | undefined
  try {
    if (networked) libp2p = await startLibp2p(options, helia)
    await helia.start()
    if (libp2p) {
      const { multiaddr } = await import("@multiformats/multiaddr")
      for (const peer of options.peers) await libp2p.dial(multiaddr(peer))
    }
  } catch (error) {
    await helia.stop().catch(() => undefined)
    await Promise.resolve(libp2p?.stop()).catch(() => undefined)
    throw error
  }
  const stop = helia.stop.bind(helia)
  // Stopping the node stops libp2p after Helia (bitswap first).
  helia.stop = async () => { await stop(); await libp2p?.stop(); return helia }
  return {
    helia,
    fs: unixfs(helia),
    offline: !networked,
    addresses: () => libp2p?.getMultiaddrs().map((a) => a.toString()) ?? []
  }
}

/** Starts a node for the lifetime of the scope. */
export const ipfsNode = (uri: string, options: IpfsNodeOptions): Effect.Effect<IpfsNode, StoreIoError, import("effect").Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => start(options), catch: (e) => new StoreIoError({ store: uri, operation: "start the IPFS node", reason: String(e) }) }),
    (node) => Effect.promise(() => node.helia.stop().then(() => undefined, () => undefined))
  )
