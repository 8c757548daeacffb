/**
 * Nix's binary-cache protocol over any blob storage: `nix-cache-info`, `<hash>.narinfo`,
 * `nar/<filehash>.nar[.xz|.zst|.bz2]`. Reads stream the NAR through decompression and the NAR
 * hash/size/structure checks; writes stream it through validation, compression and hashing into a
 * spool file, upload the NAR, and write the narinfo last — so a reader never sees a narinfo whose
 * NAR is missing or partial. Blob stores that take streamed uploads (S3) skip the spool file: the
 * NAR goes up as it is compressed, named `nar/<narhash>.nar[…]`. Realisations of content-addressed
 * derivation outputs are kept as Nix 2.8 keeps them, in `realisations/<drv output>.doi` (JSON),
 * signed with the cache's secret keys.
 */
import { Effect, Option, Result, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs"
import { join } from "node:path"
import * as CacheInfo from "../../core/cache-info.ts"
import * as Hash from "../../core/hash.ts"
import * as NarInfo from "../../core/narinfo.ts"
import * as Realisation from "../../core/realisation.ts"
import type * as Signature from "../../core/signature.ts"
import * as StorePath from "../../core/store-path.ts"
import { PathNotValid, StoreCorrupt, StoreIoError, Unsupported } from "../../services/store-errors.ts"
import type { PathInfo } from "../../core/path-info.ts"
import type { StoreError } from "../../services/store-errors.ts"
import type { StoreReadApi } from "../../services/store-read.ts"
import type { StoreWriteApi } from "../../services/store-write.ts"
import { expectationOf, verifiedNar } from "../../services/verified-nar.ts"
import { checkedNar, wholeNarMax, type NarPlan } from "../../nar/check.ts"
import { makeStoreWrite } from "../../services/write-helpers.ts"
import { ListingBuilder, listingFile } from "../../nar/listing.ts"
import type { BlobStore } from "./blob-store.ts"
import { compress, decompress, extension, isCompression, type Compression } from "../../io/compression.ts"
import { fromPathInfo, toPathInfo } from "../../services/narinfo-convert.ts"
import { ownString } from "../../core/own-string.ts"
import { CompactTable } from "./compact.ts"

export interface BinaryCacheOptions {
  readonly storeDir?: string
  /** Compression of NARs written (Nix's default: xz). */
  readonly compression?: Compression
  /** Sign every path written with these keys (Nix's `secret-key`). */
  readonly secretKeys?: ReadonlyArray<Signature.SecretKey>
  /** Compress with all cores (Nix's `parallel-compression`). */
  readonly parallelCompression?: boolean
  /** Write `<hash>.ls`, the JSON listing of each NAR, as Nix's `write-nar-listing` does. */
  readonly writeNarListing?: boolean
  /** How long a "not in the cache" answer is remembered, in ms (Nix: narinfo-cache-negative-ttl). */
  readonly negativeTtlMs?: number
  /** Priority as a substituter (lower first); default: the cache's `nix-cache-info`, else 0. */
  readonly priority?: number
  /**
   * Narinfos (and misses) kept in memory, least recently used dropped first (default 65,536, a few
   * tens of MiB): a long-running server or a huge copy does not grow without bound.
   */
  readonly maxCachedNarInfos?: number
}

export interface BinaryCacheStore {
  readonly read: StoreReadApi
  readonly write: StoreWriteApi
  readonly cacheInfo: CacheInfo.CacheInfo
}

/**
 * What a store keeps of a narinfo it read: the path's info and where its NAR is. Its strings are
 * copies: V8 makes a substring of 13 or more characters a view of the string it was cut from, so
 * the fields of a parsed narinfo would keep its whole text alive (a copy of a closure of 10,000
 * paths holds them all).
 */
interface Known {
  readonly info: PathInfo
  readonly url: string
  readonly compression: string
  readonly fileHash?: Hash.Hash | undefined
  readonly fileSize?: number | undefined
  readonly system?: string | undefined
}

const noSignatures: ReadonlyArray<string> = []

/** The compact record of a parsed narinfo: interned paths, digests in slabs, strings of their own (see compact.ts). */
const toKnown = (ni: NarInfo.NarInfo, storeDir: string, table: CompactTable): Result.Result<Known, NarInfo.InvalidNarInfo> =>
  Result.map(toPathInfo(ni, storeDir), (info) => {
    const narHash = table.hash(info.narHash)
    // An uncompressed NAR's file hash is its NAR hash: one digest for both.
    const fileHash = ni.fileHash === undefined ? undefined : Hash.equals(ni.fileHash, info.narHash) ? narHash : table.hash(ni.fileHash)
    return {
      info: {
        path: table.path(info.path),
        narHash,
        narSize: info.narSize,
        references: info.references.map((r) => table.path(r)),
        deriver: info.deriver && table.path(info.deriver),
        signatures: info.signatures.length === 0 ? noSignatures : info.signatures.map(ownString),
        ca: info.ca
      },
      url: ownString(ni.url),
      compression: ownString(ni.compression),
      fileHash,
      fileSize: ni.fileSize,
      system: ni.system && ownString(ni.system)
    }
  })

const toNarInfo = (k: Known, storeDir: string): NarInfo.NarInfo =>
  ({ ...fromPathInfo(k.info, k, storeDir), ...(k.system !== undefined ? { system: k.system } : {}) })

/** Where a binary cache keeps a realisation. */
export const realisationKey = (id: Realisation.DrvOutput): string => `realisations/${Realisation.printDrvOutput(id)}.doi`

export const makeBinaryCacheStore = (blobs: BlobStore, options: BinaryCacheOptions & { readonly writable: boolean }): Effect.Effect<BinaryCacheStore, StoreError> =>
  Effect.gen(function*() {
    const uri = blobs.uri
    const storeDir = options.storeDir ?? StorePath.defaultStoreDir
    const compression = options.compression ?? "xz"
    const corrupt = (reason: string) => new StoreCorrupt({ store: uri, reason })

    // nix-cache-info: read it, or create it in a writable cache that has none yet.
    const infoBytes = yield* blobs.getBytes("nix-cache-info")
    let cacheInfo: CacheInfo.CacheInfo = { storeDir }
    if (Option.isSome(infoBytes)) {
      const parsed = CacheInfo.parse(new TextDecoder().decode(infoBytes.value), `${uri}/nix-cache-info`)
      if (Result.isFailure(parsed)) return yield* corrupt(parsed.failure.message)
      cacheInfo = parsed.success
      if (cacheInfo.storeDir !== undefined && cacheInfo.storeDir !== storeDir) {
        return yield* corrupt(`it is a cache for store dir ${cacheInfo.storeDir}, not ${storeDir}`)
      }
    } else if (options.writable) {
      yield* blobs.putBytes("nix-cache-info", new TextEncoder().encode(CacheInfo.print({ storeDir })), "text/x-nix-cache-info")
    }

    // narinfo lookups, remembered: hits for the life of the store, misses for a while.
    const maxCached = Math.max(1, options.maxCachedNarInfos ?? 65_536)
    // Maps keep insertion order: re-inserting on use makes the first key the least recently used.
    const remember = <V>(map: Map<string, V>, key: string, value: V) => {
      map.delete(key)
      map.set(key, value)
      if (map.size > maxCached) map.delete(map.keys().next().value!)
    }
    const known = new Map<string, Known>()
    const table = new CompactTable(maxCached * 2)
    const missing = new Map<string, number>()
    const negativeTtl = options.negativeTtlMs ?? 60_000
    const print = (path: StorePath.StorePath) => StorePath.print(path, storeDir)
    const notValid = (path: StorePath.StorePath) => new PathNotValid({ path: print(path), store: uri })

    const lookup = (hashPart: string): Effect.Effect<Option.Option<Known>, StoreError> => Effect.gen(function*() {
      const hit = known.get(hashPart)
      if (hit) { remember(known, hashPart, hit); return Option.some(hit) }
      const missedAt = missing.get(hashPart)
      if (missedAt !== undefined && Date.now() - missedAt < negativeTtl) return Option.none()
      const bytes = yield* blobs.getBytes(`${hashPart}.narinfo`)
      if (Option.isNone(bytes)) { remember(missing, hashPart, Date.now()); return Option.none() }
      if (bytes.value.length > NarInfo.maxNarInfoBytes) return yield* corrupt(`${hashPart}.narinfo is larger than ${NarInfo.maxNarInfoBytes} bytes`)
      const parsed = NarInfo.parse(new TextDecoder().decode(bytes.value), { storeDir, source: `${uri}/${hashPart}.narinfo` })
      if (Result.isFailure(parsed)) return yield* corrupt(parsed.failure.message)
      const entry = toKnown(parsed.success, storeDir, table)
      if (Result.isFailure(entry)) return yield* corrupt(entry.failure.message)
      if (entry.success.info.path.hashPart !== hashPart) return yield* corrupt(`${hashPart}.narinfo describes ${parsed.success.storePath}`)
      remember(known, hashPart, entry.success)
      missing.delete(hashPart)
      return Option.some(entry.success)
    })

    const isPath = (found: Option.Option<Known>, path: StorePath.StorePath): found is Option.Some<Known> =>
      Option.isSome(found) && found.value.info.path.name === path.name
    const knownOf = (path: StorePath.StorePath) => Effect.flatMap(lookup(path.hashPart), (found) =>
      isPath(found, path) ? Effect.succeed(found.value) : Effect.fail(notValid(path)))

    const queryPathInfo = (path: StorePath.StorePath): Effect.Effect<PathInfo, StoreError> => Effect.map(knownOf(path), (k) => k.info)

    const isValidPath = (path: StorePath.StorePath) => Effect.map(lookup(path.hashPart), (found) => isPath(found, path))

    /** The NAR file as it is stored, decompressed; a small uncompressed one can also be fetched whole. */
    const narPlan = (path: StorePath.StorePath, k: Known): Effect.Effect<NarPlan<StoreError, never>, StoreError> => {
      if (!isCompression(k.compression)) return Effect.fail(corrupt(`${print(path)} uses unknown compression '${k.compression}'`))
      // Errors name the store path as well as the file: a truncated or damaged NAR says whose it is.
      const readFailed = (reason: string) => new StoreIoError({ store: uri, operation: `read the NAR of ${print(path)} (${k.url})`, reason })
      const bytes = decompress(blobs.getStream(k.url), k.compression).pipe(
        Stream.mapError((e): StoreError => e._tag === "CompressionError" ? readFailed(e.message) : e))
      const expect = [expectationOf(k.info, storeDir)]
      if (k.compression !== "none") return Effect.succeed({ bytes, expect })
      if (k.info.narSize > wholeNarMax || (k.fileSize ?? k.info.narSize) > wholeNarMax) return Effect.succeed({ bytes, expect, file: blobs.localPath?.(k.url) })
      const whole = Effect.flatMap(blobs.getBytes(k.url), (found) => Option.isSome(found) ? Effect.succeed(found.value) : Effect.fail(readFailed("not found")))
      return Effect.succeed({ bytes, expect, whole })
    }

    const priority = options.priority ?? cacheInfo.priority
    const read: StoreReadApi = {
      uri,
      storeDir,
      ...(priority !== undefined ? { priority } : {}),
      queryPathInfo,
      isValidPath,
      queryValidPaths: (paths) => Effect.map(
        Effect.forEach(paths, (p) => Effect.map(isValidPath(p), (ok) => (ok ? [p] : [])), { concurrency: 128 }),
        (found) => found.flat()),
      // checked against the narinfo as it is read, or in the pass of a consumer that checks it anyway (check.ts)
      narFromPath: (path) => checkedNar(Effect.flatMap(knownOf(path), (k) => narPlan(path, k))),
      queryPathFromHashPart: (hashPart) => Effect.map(lookup(hashPart), Option.map((k) => k.info.path)),
      queryReferrers: () => Effect.fail(new Unsupported({ store: uri, operation: "querying referrers (binary caches do not index them)" })),
      storedNar: (path) => Effect.map(knownOf(path), (k) =>
        ({ compression: k.compression, fileHash: k.fileHash, fileSize: k.fileSize, bytes: blobs.getStream(k.url), file: blobs.localPath?.(k.url) })),
      queryRealisation: (id) => Effect.gen(function*() {
        const key = realisationKey(id)
        const bytes = yield* blobs.getBytes(key)
        if (Option.isNone(bytes)) return Option.none()
        const parsed = Realisation.parse(new TextDecoder().decode(bytes.value), `${uri}/${key}`)
        if (Result.isFailure(parsed)) return yield* corrupt(parsed.failure.message)
        return Option.some(parsed.success)
      })
    }

    const writeNarInfo = (ni: NarInfo.NarInfo, hashPart: string) => Effect.gen(function*() {
      const signed = (options.secretKeys ?? []).reduce((acc, key) => NarInfo.sign(acc, key, storeDir), ni)
      yield* blobs.putBytes(`${hashPart}.narinfo`, new TextEncoder().encode(NarInfo.print(signed)), "text/x-nix-narinfo")
      const entry = toKnown(signed, storeDir, table)
      if (Result.isSuccess(entry)) remember(known, hashPart, entry.success)
      missing.delete(hashPart)
    })

    const writeListing = (listing: ListingBuilder, info: PathInfo) => Effect.gen(function*() {
      const root = listing.end()
      if (Result.isFailure(root)) return yield* new StoreIoError({ store: uri, operation: "list NAR", reason: root.failure.message })
      yield* blobs.putBytes(`${info.path.hashPart}.ls`, listingFile(root.success), "application/json")
    })

    /** The NAR validated and compressed, in one pass (its listing built on the way, when asked). */
    const compressedNar = <E, R>(info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>, listing?: ListingBuilder) =>
      compress(verifiedNar(info, storeDir, nar, listing && ((event) => listing.push(event))), compression, { parallel: options.parallelCompression ?? false }).pipe(
        Stream.mapError((e): StoreError | E => (typeof e === "object" && e !== null && (e as { _tag?: string })._tag === "CompressionError")
          ? new StoreIoError({ store: uri, operation: "compress NAR", reason: (e as Error).message }) : e as StoreError | E))

    /**
     * The FileHash and FileSize of the NAR file written, fed its bytes. An uncompressed NAR's are the
     * NAR's own hash and size, which the pass writing it checks against `info` (the file is used
     * only once that pass has completed), so it is not hashed a second time.
     */
    const fileDigest = (info: PathInfo) => {
      if (compression === "none" && info.narHash.algorithm === "sha256") {
        return { update: (_chunk: Uint8Array) => {}, result: () => ({ fileHash: info.narHash, fileSize: info.narSize }) }
      }
      const hasher = Hash.hasher("sha256")
      let size = 0
      return {
        update: (chunk: Uint8Array) => { hasher.update(chunk); size += chunk.length },
        result: () => ({ fileHash: hasher.digest(), fileSize: size })
      }
    }

    /** Validates, compresses and hashes the NAR into a spool file; returns its FileHash and FileSize. */
    const spoolNar = <E, R>(info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>, spool: string, listing?: ListingBuilder) => Effect.gen(function*() {
      const fd = yield* Effect.try({ try: () => { mkdirSync(blobs.spoolDir, { recursive: true }); return openSync(spool, "w") }, catch: (e) => new StoreIoError({ store: uri, operation: "spool NAR", reason: String(e) }) })
      const digest = fileDigest(info)
      yield* Effect.ensuring(
        Stream.runForEach(compressedNar(info, nar, listing), (chunk) => Effect.try({
          try: () => { writeSync(fd, chunk); digest.update(chunk) },
          catch: (e) => new StoreIoError({ store: uri, operation: "spool NAR", reason: String(e) })
        })),
        Effect.sync(() => closeSync(fd))
      )
      return digest.result()
    })

    /**
     * Validates, compresses, hashes and uploads the NAR in one pass (no spool file). The NAR is
     * named by its NAR hash, known before it is compressed, instead of its file hash (or by the
     * name a content-addressed blob store gives it).
     */
    const streamNar = <E, R>(info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>, putStream: NonNullable<BlobStore["putStream"]>, listing?: ListingBuilder) => Effect.gen(function*() {
      const url = `nar/${Hash.encode(info.narHash, "base32")}${extension[compression]}`
      const digest = fileDigest(info)
      const hashed = Stream.map(compressedNar(info, nar, listing), (chunk) => { digest.update(chunk); return chunk })
      const storedAs = yield* putStream(url, hashed, "application/x-nix-nar", info.narSize)
      return { url: storedAs ?? url, ...digest.result() }
    })

    const addToStore = <E, R>(info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, StoreError | E, R> =>
      Effect.gen(function*() {
        if (!options.writable) return yield* new Unsupported({ store: uri, operation: "writing (it is read-only)" })
        if (yield* isValidPath(info.path)) return
        const listing = options.writeNarListing ? new ListingBuilder() : undefined
        /** The listing (when asked), then the narinfo: last, so that everything it names is there. */
        const finish = (file: { readonly url: string; readonly fileHash: Hash.Hash; readonly fileSize: number }) => Effect.gen(function*() {
          if (listing) yield* writeListing(listing, info)
          yield* writeNarInfo(fromPathInfo(info, { ...file, compression }, storeDir), info.path.hashPart)
        })
        if (blobs.putStream) return yield* finish(yield* streamNar(info, nar, blobs.putStream, listing))
        const spool = join(blobs.spoolDir, `nar-${process.pid}-${randomBytes(6).toString("hex")}`)
        yield* Effect.ensuring(Effect.gen(function*() {
          const { fileHash, fileSize } = yield* spoolNar(info, nar, spool, listing)
          const url = `nar/${Hash.encode(fileHash, "base32")}${extension[compression]}`
          if (!(yield* blobs.exists(url))) yield* blobs.putFile(url, spool, "application/x-nix-nar")
          yield* finish({ url, fileHash, fileSize })
        }), Effect.sync(() => rmSync(spool, { force: true })))
      })

    const write = makeStoreWrite(read, {
      addToStore,
      addSignatures: (path, signatures) => Effect.gen(function*() {
        const ni = toNarInfo(yield* knownOf(path), storeDir)
        yield* writeNarInfo({ ...ni, sigs: [...new Set([...ni.sigs, ...signatures])] }, path.hashPart)
      })
    }, {
      // As Nix's BinaryCacheStore::registerDrvOutput (which writes it as given; b3 also signs it).
      registerRealisation: (r) => Effect.gen(function*() {
        if (!options.writable) return yield* new Unsupported({ store: uri, operation: "writing (it is read-only)" })
        const signed = (options.secretKeys ?? []).reduce((acc, key) => Realisation.sign(acc, key), r)
        yield* blobs.putBytes(realisationKey(r.id), new TextEncoder().encode(Realisation.print(signed)), "application/json")
      })
    })

    return { read, write, cacheInfo }
  })

