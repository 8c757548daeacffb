/**
 * A `BlobStore` (the storage under a binary cache) inside one IPFS UnixFS directory tree: the
 * store's root. Its entries are the files of a Nix binary cache:
 *
 *   <root>/nix-cache-info
 *   <root>/<hash part>.narinfo          (raw leaf)
 *   <root>/nar/<NAR CID>.nar            (the NAR's file DAG, see nar-segments.ts and file-dag.ts)
 *
 * Directories become HAMT-sharded as they grow, so a lookup reads, and a write rewrites, O(log n)
 * small blocks. Every put produces a new root; updates are serialised and each
 * new root is handed to `publish` (the repo's pointer file) once all its blocks are stored.
 * NARs are streamed in: the body is cut into leaves as it arrives and stored block by block
 * (memory stays flat), and only a body that completes gets linked into the root, under the name
 * `nar/<CID>.nar` that `putStream` returns, so the narinfo's URL records the NAR's CID.
 */
import type { UnixFS } from "@helia/unixfs"
import { Effect, Option, Semaphore, Stream } from "effect"
import type { Helia } from "helia"
import { CID } from "multiformats/cid"
import { createReadStream } from "node:fs"
import { StoreIoError, type BlobStore } from "b3/plugin"
import { type Block, FileDagBuilder } from "./file-dag.ts"
import { defaultChunkSize, NarSegmenter } from "./nar-segments.ts"

export interface IpfsBlobsOptions {
  readonly uri: string
  readonly helia: Helia
  readonly fs: UnixFS
  /** The root directory's CID at the start. */
  readonly root: CID
  /** Called with each new root (under the update lock); absent: the store is read-only. */
  readonly publish?: ((root: CID) => Effect.Effect<void, StoreIoError>) | undefined
  /** Fail at once on a block that is not local (no peers to ask). */
  readonly offline: boolean
  /** How long one read may wait for blocks from peers. */
  readonly timeoutMs: number
  /** Largest small blob (`getBytes`: narinfo, nix-cache-info) read whole. */
  readonly maxBlobBytes?: number
}

export interface IpfsBlobs extends BlobStore {
  /** The current root CID. */
  readonly root: () => CID
}

const narKeyRe = /^nar\/([a-z0-9]+)\.nar$/

/**
 * Directories are HAMT-sharded from 1 KiB of links on, 16-way: a new root then rewrites a few
 * blocks of about 1 KiB per level. (A plain directory, or 256-way shards, rewrite up to 256 KiB
 * per write, and every superseded version stays in the blockstore: 3000 small paths took 1.1 GB.)
 */
const directoryOptions = { force: true, shardSplitThresholdBytes: 1024, shardFanoutBits: 4 }

const errorName = (e: unknown) => (e as { name?: string } | undefined)?.name

export const makeIpfsBlobs = (options: IpfsBlobsOptions): Effect.Effect<IpfsBlobs> => Effect.gen(function*() {
  const { uri, fs, helia } = options
  let root = options.root
  const updates = yield* Semaphore.make(1)
  const maxBlobBytes = options.maxBlobBytes ?? 4 << 20
  const ioError = (operation: string) => (e: unknown) =>
    e instanceof StoreIoError ? e : new StoreIoError({ store: uri, operation, reason: e instanceof Error ? e.message : String(e) })

  /** A signal that fires when the effect is interrupted or the read has waited too long for peers. */
  const readSignal = (signal: AbortSignal) => options.offline ? signal : AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)])
  /**
   * The exporter reads a node's children ahead of the consumer, by default all at once (174 leaves:
   * 44 MiB); a few at a time keeps a NAR read's memory flat and still overlaps fetches from peers.
   */
  const readOptions = (signal: AbortSignal) => ({ signal: readSignal(signal), offline: options.offline, blockReadConcurrency: options.offline ? 4 : 16 })

  const putBlocks = async (blocks: ReadonlyArray<Block>, signal?: AbortSignal) => {
    for (const block of blocks) await helia.blockstore.put(block.cid, block.bytes, signal ? { signal } : {})
  }

  /** Links `cid` at `key` (`name` or `dir/name`) under a new root, and publishes it. */
  const link = (key: string, cid: CID) => {
    const publish = options.publish
    if (!publish) return Effect.fail(new StoreIoError({ store: uri, operation: `write ${key}`, reason: "the store is read-only" }))
    return updates.withPermits(1)(Effect.gen(function*() {
      const slash = key.indexOf("/")
      const next = yield* Effect.tryPromise({
        try: async () => {
          if (slash < 0) return fs.cp(cid, root, key, directoryOptions)
          const dirName = key.slice(0, slash)
          const dir = await fs.stat(root, { path: dirName, offline: true }).then((s) => s.cid, async (e) => {
            if (errorName(e) !== "NotFoundError") throw e
            return fs.addDirectory()
          })
          const newDir = await fs.cp(cid, dir, key.slice(slash + 1), directoryOptions)
          return fs.cp(newDir, root, dirName, directoryOptions)
        },
        catch: ioError(`link ${key} into the root`)
      })
      yield* publish(next)
      root = next
    }))
  }

  /** Stores a file DAG of `body` (cut by `cut`) and gives its root CID. */
  const storeFile = <E, R>(key: string, body: Stream.Stream<Uint8Array, E, R>, cut: (chunk: Uint8Array | undefined) => Array<Uint8Array> | Error) =>
    Effect.gen(function*() {
      const dag = new FileDagBuilder()
      const add = (leaves: Array<Uint8Array> | Error) => !Array.isArray(leaves)
        ? Effect.fail(new StoreIoError({ store: uri, operation: `store ${key}`, reason: leaves.message }))
        : Effect.tryPromise({ try: (signal) => putBlocks(leaves.flatMap((leaf) => dag.add(leaf)), signal), catch: ioError(`store ${key}`) })
      yield* Stream.runForEach(body, (chunk) => add(cut(chunk)))
      yield* add(cut(undefined))
      const { root: file, blocks } = dag.finish()
      yield* Effect.tryPromise({ try: (signal) => putBlocks(blocks, signal), catch: ioError(`store ${key}`) })
      return file.cid
    })

  /** Fixed-size leaves, for blobs that are not NARs. */
  const fixedChunks = () => {
    let pending: Uint8Array = new Uint8Array(0)
    return (chunk: Uint8Array | undefined): Array<Uint8Array> => {
      const all = chunk ? Buffer.concat([pending, chunk]) : pending
      const cut = chunk ? all.length - (all.length % defaultChunkSize) : all.length
      const leaves: Array<Uint8Array> = []
      for (let p = 0; p < cut; p += defaultChunkSize) leaves.push(all.subarray(p, Math.min(p + defaultChunkSize, cut)))
      pending = all.subarray(cut)
      return leaves
    }
  }

  const narChunks = () => {
    const segmenter = new NarSegmenter()
    return (chunk: Uint8Array | undefined) => chunk ? segmenter.push(chunk) : segmenter.end()
  }

  /** The contents of a file in the tree (a NAR straight by its CID), streamed. */
  const catStream = (key: string): Stream.Stream<Uint8Array, StoreIoError> => Stream.unwrap(Effect.map(
    Effect.acquireRelease(Effect.sync(() => new AbortController()), (c) => Effect.sync(() => c.abort())),
    (controller) => {
      const nar = narKeyRe.exec(key)
      const cid = nar ? CID.parse(nar[1]!) : root
      const catOptions = { ...readOptions(controller.signal), ...(nar ? {} : { path: key }) }
      return Stream.fromAsyncIterable(fs.cat(cid, catOptions), ioError(`read ${key}`))
    }))

  const getBytes = (key: string) => Effect.tryPromise({
    try: async (signal) => {
      const chunks: Array<Uint8Array> = []
      let size = 0
      try {
        for await (const chunk of fs.cat(root, { ...readOptions(signal), path: key })) {
          size += chunk.length
          if (size > maxBlobBytes) throw new Error(`${key} is larger than ${maxBlobBytes} bytes`)
          chunks.push(chunk)
        }
      } catch (e) {
        if (errorName(e) === "NotFoundError") return Option.none<Uint8Array>()
        throw e
      }
      return Option.some<Uint8Array>(Buffer.concat(chunks))
    },
    catch: ioError(`read ${key}`)
  })

  const putStream = <E, R>(key: string, body: Stream.Stream<Uint8Array, E, R>) => Effect.gen(function*() {
    const isNar = key.startsWith("nar/") && key.endsWith(".nar")
    const cid = yield* storeFile(key, body, isNar ? narChunks() : fixedChunks())
    const storedAs = isNar ? `nar/${cid.toString()}.nar` : key
    yield* link(storedAs, cid)
    return storedAs
  })

  return {
    uri,
    spoolDir: "",
    root: () => root,
    exists: (key) => Effect.tryPromise({
      try: (signal) => fs.stat(root, { ...readOptions(signal), path: key }).then(() => true, (e) => {
        if (errorName(e) === "NotFoundError") return false
        throw e
      }),
      catch: ioError(`look up ${key}`)
    }),
    getBytes,
    getStream: (key) => {
      const nar = narKeyRe.exec(key)
      if (nar) {
        try { CID.parse(nar[1]!) } catch { return Stream.fail(new StoreIoError({ store: uri, operation: `read ${key}`, reason: "not a CID" })) }
      }
      return catStream(key)
    },
    putBytes: (key, bytes) => Effect.asVoid(putStream(key, Stream.make(bytes))),
    putFile: (key, file) => Effect.asVoid(putStream(key, Stream.fromAsyncIterable<Uint8Array, StoreIoError>(createReadStream(file), ioError(`read ${file}`)))),
    putStream: (key, body) => putStream(key, body)
  }
})
