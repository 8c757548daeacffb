/**
 * A deduplicating chunk store over any blob store (a directory, S3, or — for reading — HTTP).
 *
 * Ingest is one streaming pass: the NAR is validated (structure, hash, size) while the hash parts
 * of the path and its references are replaced with a filler (position table kept), cut by FastCDC,
 * each chunk hashed (sha256) and looked up; only new chunks are compressed (zstd, on the chunk
 * workers' threads) and appended to the shared open pack. When the NAR ends, the packs holding its new
 * chunks are sealed, the path is committed to the index (reference counts, in one transaction),
 * and its record (narinfo + manifest) is published to the blob store, which is what readers see.
 *
 * Blob layout: `chunk-store-info` (JSON: format, store dir, chunking), `paths/<hash>.b3p` (path
 * records), `packs/<name>-<version>.pack` (chunks) and `packs/<name>.idx` (the current version and
 * each chunk's place). Reads need only these blobs (a reader over HTTP has no database); writers,
 * the garbage collector and the repacker also use the index (SQLite or PostgreSQL).
 */
import { Effect, Option, Result, type Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { readdirSync, rmSync } from "node:fs"
import { hostname } from "node:os"
import { dirname, join } from "node:path"
import { fromHex, hex } from "../../core/chunks/binary.ts"
import { Chunker, type ChunkParams, makeCutter } from "../../core/chunks/fastcdc.ts"
import { CODEC_DELTA, CODEC_RAW, type Codec, decodeManifest, decodePathRecord, encodeManifest, encodePackIndex, encodePathRecord, type Manifest, type ManifestChunk, type PackEntry } from "../../core/chunks/formats.ts"
import { Denormaliser, HASH_LENGTH, Normaliser } from "../../core/chunks/normalise.ts"
import { usableAsBase } from "../../core/chunks/resemblance.ts"
import * as Hash from "../../core/hash.ts"
import * as NarInfo from "../../core/narinfo.ts"
import type * as Signature from "../../core/signature.ts"
import * as StorePath from "../../core/store-path.ts"
import type { PathInfo } from "../../core/path-info.ts"
import { BadStoreUri, PathNotValid, StoreCorrupt, StoreIoError, Unsupported, type StoreError } from "../../services/store-errors.ts"
import type { GcResult, RepackResult, StoreMaintenanceApi, VerifyProblem } from "../../services/store-maintenance.ts"
import type { StoreReadApi, StoredNar } from "../../services/store-read.ts"
import type { StoreWriteApi } from "../../services/store-write.ts"
import { verifiedNar, verifiedNarButHash } from "../../services/verified-nar.ts"
import { narHashMismatch } from "../../nar/check.ts"
import { processAlive } from "../../io/process-alive.ts"
import { makeStoreWrite } from "../../services/write-helpers.ts"
import type { BlobStore } from "../binary-cache/blob-store.ts"
import { fromPathInfo, toPathInfo } from "../../services/narinfo-convert.ts"
import type { ChunkIndex } from "./chunk-index.ts"
import { type Batch, type BatchSlot, chunkWorkers, giveSlot, type NarPart, slotJob, takeSlot } from "./chunk-workers.ts"
import { type FeedMode, feedNar } from "./feed.ts"
import { makeBaseReader, makePackLocator, makePackWriter, narStream, packIndexKey, packKey, pathKey, putParts, zstdNarStream } from "./packs.ts"

/** Chunks hashed, looked up and encoded together (a message to a chunk worker each, a few in flight). */
const BATCH_BYTES = 2 << 20
/** The NAR goes to the cutter in pieces of at most this many bytes. */
const PIECE = 256 << 10

/** 16/64/256 KiB: see bench/chunks (dedup against size of the index and of manifests). */
export const defaultChunking: ChunkParams = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 }
/**
 * Whether delta chunks also cover chunks that look incompressible (the `delta-incompressible`
 * option). Off: such chunks are stored whole, and ingest skips their super-features (see the README's
 * "Chunk store": ingest of incompressible data at about the speed of `delta=0`, corpus (a) 1.6% larger).
 */
export const defaultDeltaIncompressible = false

export interface ChunkedStoreOptions {
  readonly storeDir?: string
  /** Sign every path written with these keys. */
  readonly secretKeys?: ReadonlyArray<Signature.SecretKey>
  /** Chunk sizes for a new store (an existing one keeps those it was made with). */
  readonly chunking?: ChunkParams
  /** Target pack size in bytes (default 32 MiB). */
  readonly packSize?: number
  readonly zstdLevel?: number
  /** Repack a pack when less than this fraction of it is still kept (default 0.5). */
  readonly repackThreshold?: number
  /**
   * Store a new chunk as a zstd delta against a similar stored chunk when that is smaller (default
   * true). Reading delta chunks works either way.
   */
  readonly delta?: boolean
  /**
   * With delta chunks on, also compute the super-features of new chunks that look incompressible
   * (default {@link defaultDeltaIncompressible}), so that they can be deltas and bases. Without it such chunks are stored whole
   * (as they are), never as deltas nor as bases, and ingest skips their super-features.
   */
  readonly deltaIncompressible?: boolean
  /** The index; without one the store is read-only. */
  readonly index?: ChunkIndex
}

export interface ChunkedStore {
  readonly read: StoreReadApi
  readonly write: StoreWriteApi | undefined
  readonly maintenance: StoreMaintenanceApi | undefined
}

interface StoreInfo { readonly format: 1; readonly storeDir: string; readonly chunking: ChunkParams }

const INFO_KEY = "chunk-store-info"

/** `host:pid`: who is writing, to tell later whether it is still alive. */
export const processOwner = () => `${hostname()}:${process.pid}`

/** Whether the process that wrote `owner` (host:pid) is gone: dead here, or silent for 10 minutes elsewhere. */
export const ownerGone = (owner: string, heartbeat: number, now = Date.now()): boolean => {
  const [host, pid] = owner.split(":")
  if (host === hostname() && pid !== undefined && /^\d+$/.test(pid)) return !processAlive(Number(pid))
  return now - heartbeat > 10 * 60_000
}

export const makeChunkedStore = (blobs: BlobStore, options: ChunkedStoreOptions): Effect.Effect<ChunkedStore, StoreError | BadStoreUri, Scope.Scope> =>
  Effect.gen(function*() {
    const uri = blobs.uri
    const index = options.index
    const corrupt = (reason: string) => new StoreCorrupt({ store: uri, reason })
    const ioError = (operation: string) => (e: unknown) => new StoreIoError({ store: uri, operation, reason: e instanceof Error ? e.message : String(e) })

    // The store's description: made by the first writer, then fixed (chunking decides dedup).
    const infoBytes = yield* blobs.getBytes(INFO_KEY)
    let info: StoreInfo
    if (Option.isSome(infoBytes)) {
      const parsed = yield* Effect.try({ try: () => JSON.parse(new TextDecoder().decode(infoBytes.value)) as StoreInfo, catch: () => corrupt(`${INFO_KEY} is not JSON`) })
      if (parsed.format !== 1 || typeof parsed.storeDir !== "string" || typeof parsed.chunking?.avg !== "number") return yield* corrupt(`${INFO_KEY}: unknown format`)
      info = parsed
      if (options.storeDir !== undefined && options.storeDir !== info.storeDir) return yield* corrupt(`it is a store for ${info.storeDir}, not ${options.storeDir}`)
    } else {
      info = { format: 1, storeDir: options.storeDir ?? StorePath.defaultStoreDir, chunking: options.chunking ?? defaultChunking }
      if (index) yield* blobs.putBytes(INFO_KEY, new TextEncoder().encode(JSON.stringify(info) + "\n"), "application/json")
    }
    const storeDir = info.storeDir
    const cutterCheck = makeCutter(info.chunking)
    if (Result.isFailure(cutterCheck)) return yield* new BadStoreUri({ uri, reason: cutterCheck.failure.message })
    const print = (path: StorePath.StorePath) => StorePath.print(path, storeDir)
    const notValid = (path: StorePath.StorePath) => new PathNotValid({ path: print(path), store: uri })

    // ---- reading ------------------------------------------------------------------------
    interface Record { readonly narInfo: NarInfo.NarInfo; readonly info: PathInfo; readonly manifest: Manifest }
    const records = new Map<string, Record>()
    const recordOf = (hashPart: string): Effect.Effect<Option.Option<Record>, StoreError> => Effect.gen(function*() {
      const cached = records.get(hashPart)
      if (cached) return Option.some(cached)
      const bytes = yield* blobs.getBytes(pathKey(hashPart))
      if (Option.isNone(bytes)) return Option.none()
      const decoded = decodePathRecord(bytes.value)
      if (Result.isFailure(decoded)) return yield* corrupt(`${pathKey(hashPart)}: ${decoded.failure.message}`)
      const ni = NarInfo.parse(decoded.success.narInfo, { storeDir, source: pathKey(hashPart) })
      if (Result.isFailure(ni)) return yield* corrupt(ni.failure.message)
      const pi = toPathInfo(ni.success, storeDir)
      if (Result.isFailure(pi)) return yield* corrupt(pi.failure.message)
      if (pi.success.path.hashPart !== hashPart) return yield* corrupt(`${pathKey(hashPart)} describes ${ni.success.storePath}`)
      if (decoded.success.manifest.narSize !== pi.success.narSize) return yield* corrupt(`${pathKey(hashPart)}: the manifest is for ${decoded.success.manifest.narSize} bytes, the NAR has ${pi.success.narSize}`)
      const record = { narInfo: ni.success, info: pi.success, manifest: decoded.success.manifest }
      if (records.size > 10_000) records.clear()
      records.set(hashPart, record)
      return Option.some(record)
    })
    const recordFor = (path: StorePath.StorePath) => Effect.flatMap(recordOf(path.hashPart), (r) =>
      Option.isSome(r) && r.value.narInfo.storePath === print(path) ? Effect.succeed(r.value) : Effect.fail(notValid(path)))

    const workers = chunkWorkers(uri)
    const locator = makePackLocator(uri, blobs)
    const bases = makeBaseReader(uri, blobs, locator)
    const readOptions = (manifest: Manifest) => ({
      uri, blobs, bases,
      relocate: () => { for (const p of manifest.packs) locator.forget(hex(p)); return locator.places(manifest) }
    })
    const rawNar = (record: Record) => Stream.unwrap(Effect.map(locator.places(record.manifest), (places) => narStream(readOptions(record.manifest), record.manifest, places)))

    const isValidPath = (path: StorePath.StorePath) => Effect.map(recordOf(path.hashPart), (r) => Option.isSome(r) && r.value.narInfo.storePath === print(path))

    const read: StoreReadApi = {
      uri,
      storeDir,
      queryPathInfo: (path) => Effect.map(recordFor(path), (r) => r.info),
      isValidPath,
      queryValidPaths: (paths) => Effect.map(
        Effect.forEach(paths, (p) => Effect.map(isValidPath(p), (ok) => (ok ? [p] : [])), { concurrency: 16 }),
        (found) => found.flat()),
      narFromPath: (path) => Stream.unwrap(Effect.map(recordFor(path), (r) => verifiedNar(r.info, storeDir, rawNar(r)))),
      queryPathFromHashPart: (hashPart) => Effect.map(recordOf(hashPart), Option.map((r) => r.info.path)),
      queryReferrers: (path) => index
        ? Effect.flatMap(index.referrers(path.hashPart), (paths) => Effect.forEach(paths, (p) => Effect.mapError(Effect.fromResult(StorePath.parse(p, storeDir)), (e) => corrupt(e.message))))
        : Effect.fail(new Unsupported({ store: uri, operation: "querying referrers (a chunk store read without its index)" })),
      ...(index ? {
        queryAllValidPaths: () => Effect.flatMap(index.publishedPaths(), (paths) =>
          Effect.forEach(paths, (p) => Effect.mapError(Effect.fromResult(StorePath.parse(p, storeDir)), (e) => corrupt(e.message))))
      } : {}),
      storedNar: (path, prefer) => Effect.map(recordFor(path), (r): StoredNar => {
        const feed = (mode: FeedMode) => (consume: (chunk: Uint8Array) => Promise<"stop" | undefined>) =>
          Effect.flatMap(locator.places(r.manifest), (places) => feedNar({ ...readOptions(r.manifest), workers }, r.manifest, places, mode, consume))
        return prefer === "zstd"
          ? { compression: "zstd", bytes: Stream.unwrap(Effect.map(locator.places(r.manifest), (places) => zstdNarStream(readOptions(r.manifest), r.manifest, places))), feed: feed("zstd") }
          : { compression: "none", fileHash: r.info.narHash, fileSize: r.info.narSize, bytes: rawNar(r), feed: feed("plain") }
      })
    }

    if (!index) return { read, write: undefined, maintenance: undefined }

    // ---- writing ------------------------------------------------------------------------
    const owner = processOwner()
    const packWriter = yield* makePackWriter({ uri, blobs, index, owner, packSize: options.packSize ?? 32 << 20 })
    yield* Effect.addFinalizer(() => packWriter.flush)
    const level = options.zstdLevel ?? 3
    const deltas = options.delta ?? true
    const deltaIncompressible = options.deltaIncompressible ?? defaultDeltaIncompressible
    const activeWriters = new Set<string>()
    // Ingests that run long say they are alive (for writers on other hosts sharing a PostgreSQL index).
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep("60 seconds"), Effect.ignore(index.heartbeat([...activeWriters], Date.now())))))

    const narInfoText = (pi: PathInfo) => {
      const ni = fromPathInfo(pi, { url: pathKey(pi.path.hashPart), compression: "none" }, storeDir)
      return NarInfo.print((options.secretKeys ?? []).reduce((acc, key) => NarInfo.sign(acc, key, storeDir), ni))
    }

    /** Publishes a committed path's record (what readers see), then marks it published. */
    const publish = (hashPart: string, narInfo: string, manifest: Uint8Array) => Effect.gen(function*() {
      const decoded = decodeManifest(manifest)
      if (Result.isFailure(decoded)) return yield* corrupt(`manifest of ${hashPart}: ${decoded.failure.message}`)
      records.delete(hashPart)
      yield* putParts(blobs, pathKey(hashPart), [encodePathRecord({ narInfo, manifest: decoded.success })])
      yield* index.setState(hashPart, 1)
    })

    /**
     * Chunks, hashes, dedups, compresses and packs one NAR; returns its manifest (not yet committed).
     *
     * A pipeline over batches of about 2 MiB of chunks, so that both cores work: this thread reads,
     * checks, normalises and cuts the NAR; the chunk workers hash each batch; then, one batch at a
     * time in order, the batch's new chunks are decided (looked up in the index, and against the
     * chunks earlier batches are still encoding); the workers compute the new chunks' super-features
     * and, once the index has named similar stored chunks and their bytes are read, encode them
     * (zstd, or a delta against the best base); then, in order again, they are appended to packs.
     * Several batches are in flight at each stage.
     */
    const ingest = <E, R>(pi: PathInfo, nar: Stream.Stream<Uint8Array, E, R>, writer: string) => Effect.gen(function*() {
      const cutter = Result.getOrThrow(makeCutter(info.chunking))
      const chunker = new Chunker(cutter, { views: true })
      const normaliser = new Normaliser([pi.path.hashPart, ...pi.references.map((r) => r.hashPart)])
      const chunks: Array<{ id: Uint8Array; idHex: string; length: number; pack: string }> = []
      /** Chunks stored (by this ingest or before it) or being stored: their pack. */
      const known = new Map<string, string>()
      /** Chunks an earlier batch is encoding (their pack is known once it has appended them). */
      const encoding = new Set<string>()
      let poorRun = 0

      /** `flat[i]`: chunk i looks incompressible (without a base, stored as it is: no encoding job). */
      interface Hashed { readonly batch: Batch; readonly ids: Uint8Array; readonly flat: Uint8Array; readonly sfs?: ReadonlyArray<ReadonlyArray<number> | null> | undefined }
      interface Decided extends Hashed { readonly hexes: Array<string>; readonly fresh: Array<number>; readonly probing: boolean }
      interface EncodedChunk { readonly codec: Codec; readonly payload: Uint8Array; readonly poor: boolean; readonly base?: { id: string; pack: string } | undefined; readonly sfs?: ReadonlyArray<number> | undefined }
      interface Encoded extends Decided { readonly encoded: Map<number, EncodedChunk> }

      const chunkOf = (batch: Batch, i: number) => batch.slot.input.subarray(batch.offsets[i]!, batch.offsets[i]! + batch.lengths[i]!)

      /** A batch cut, its hash job sent (in the batches' order: the NAR may be hashed from them). */
      interface Cut { readonly batch: Batch; readonly hashed: Effect.Effect<{ readonly ids: Uint8Array; readonly flat: Uint8Array; readonly sfs?: ReadonlyArray<ReadonlyArray<number> | null> | undefined }, StoreError> }
      const hashBatch = ({ batch, hashed }: Cut): Effect.Effect<Hashed, StoreError> => Effect.map(hashed, ({ ids, flat, sfs }) => ({ batch, ids, flat, sfs }))
      /**
       * The share of new chunks in the last batch decided: while it is at least half, the hash jobs
       * also compute the super-features delta chunks need (one round trip less per batch of new
       * chunks); a batch of chunks already stored would waste them, so then they are asked for
       * only for the new chunks, after the lookup. A path's first batches are taken as new.
       */
      let freshShare = 1
      const speculate = (): 0 | 1 | 2 => !deltas || freshShare < 0.5 ? 0 : deltaIncompressible ? 2 : 1

      // In order: which chunks of the batch are new (each encoded once, by the first batch that has it).
      const decide = (hashed: Hashed): Effect.Effect<Decided, StoreError> => Effect.gen(function*() {
        const hexes = hashed.batch.offsets.map((_, i) => hex(hashed.ids.subarray(32 * i, 32 * i + 32)))
        const ask = [...new Set(hexes.filter((h) => !known.has(h) && !encoding.has(h) && packWriter.pendingPack(h) === undefined))]
        if (ask.length > 0) for (const [h, pack] of yield* index.lookup(ask)) known.set(h, pack)
        const fresh: Array<number> = []
        hexes.forEach((h, i) => {
          if (known.has(h) || encoding.has(h)) return
          // in a pack another ingest here is writing: named now (the pack writer forgets it once that
          // pack is sealed, which may be before this batch is appended)
          const pending = packWriter.pendingPack(h)
          if (pending !== undefined) { known.set(h, pending); return }
          encoding.add(h)
          fresh.push(i)
        })
        freshShare = hexes.length === 0 ? freshShare : fresh.length / hexes.length
        return { ...hashed, hexes, fresh, probing: poorRun >= 4 }
      })

      // Concurrently: the new chunks' super-features, their bases, their encoding. A chunk that looks
      // incompressible and has no base is stored as it is here (what a worker's encoding would give:
      // `encodeKit` stores it raw), without a job.
      const encode = (decided: Decided): Effect.Effect<Encoded, StoreError> => Effect.gen(function*() {
        const { batch, fresh, hexes, flat, sfs: early } = decided
        if (fresh.length === 0) return { ...decided, encoded: new Map() }
        const similar = new Map<number, ReadonlyArray<number>>()
        const baseOf = new Map<number, { id: string; pack: string }>()
        if (deltas) {
          // a chunk that looks incompressible: no super-features unless asked (then never a base nor a delta)
          const wanted = fresh.filter((i) => (deltaIncompressible || flat[i] !== 1) && usableAsBase(chunkOf(batch, i)))
          // computed with the hashes (see `speculate`), or asked for now
          const missing = wanted.filter((i) => !early?.[i])
          const asked = missing.length > 0 ? yield* workers.features(batch, missing) : []
          const got = new Map(missing.map((i, k) => [i, asked[k]!]))
          const sfs = wanted.map((i) => early?.[i] ?? got.get(i)!)
          wanted.forEach((i, k) => similar.set(i, sfs[k]!))
          const matches = sfs.length > 0 ? yield* index.similar(sfs.flat()) : new Map<number, Array<{ id: string; pack: string }>>()
          if (matches.size > 0) for (const i of fresh) {
            const votes = new Map<string, { ref: { id: string; pack: string }; n: number }>()
            for (const sf of similar.get(i) ?? []) for (const ref of matches.get(sf) ?? []) {
              // the chunk itself, sealed by another writer since the lookup: never its own base
              if (ref.id === hexes[i]) continue
              const v = votes.get(ref.id) ?? { ref, n: 0 }
              v.n++
              votes.set(ref.id, v)
            }
            let best: { ref: { id: string; pack: string }; n: number } | undefined
            for (const v of votes.values()) if (!best || v.n > best.n) best = v
            if (best) baseOf.set(i, best.ref)
          }
        }
        const baseBytes = baseOf.size === 0 ? new Map<string, Uint8Array | undefined>() : new Map(yield* Effect.forEach(new Map([...baseOf.values()].map((r) => [r.id, r])).values(), (ref) =>
          // a base that cannot be read now (gone, or its pack being rewritten) is just not used
          Effect.map(Effect.option(bases.bytes(ref)), (b) => [ref.id, Option.getOrUndefined(b)] as const), { concurrency: 4 }))
        const dictionaryOf = (i: number) => { const ref = baseOf.get(i); return ref ? baseBytes.get(ref.id) : undefined }
        const asIs = (i: number) => flat[i] === 1 && dictionaryOf(i) === undefined
        const jobs = fresh.filter((i) => !asIs(i))
        const out = jobs.length === 0 ? [] : yield* workers.encode(batch, jobs, jobs.map(dictionaryOf), { level, probing: decided.probing })
        const done = new Map(jobs.map((i, k) => [i, out[k]!]))
        // in the batch's order (the run of poor chunks is counted in it)
        const encoded = new Map(fresh.map((i): readonly [number, EncodedChunk] => {
          const e = done.get(i)
          if (e === undefined) return [i, { codec: CODEC_RAW, payload: chunkOf(batch, i), poor: true, sfs: similar.get(i) }]
          return [i, { ...e, base: e.codec === CODEC_DELTA ? baseOf.get(i) : undefined, sfs: e.codec === CODEC_DELTA ? undefined : similar.get(i) }]
        }))
        return { ...decided, encoded }
      })

      // In order: the new chunks appended to the open pack, every chunk named in the manifest.
      const append = (batch: Encoded): Effect.Effect<void, StoreError> => Effect.gen(function*() {
        for (const [, e] of batch.encoded) poorRun = e.poor ? poorRun + 1 : 0
        const { ids, hexes } = batch
        const lengths = batch.batch.lengths
        let lost: string | undefined
        for (let i = 0; i < hexes.length; i++) {
          const h = hexes[i]!
          const id = ids.slice(32 * i, 32 * i + 32)
          let pack = known.get(h) ?? packWriter.pendingPack(h)
          const e = batch.encoded.get(i)
          if (pack === undefined && e !== undefined) {
            const extra = e.base ? { base: { id: fromHex(e.base.id), pack: fromHex(e.base.pack) } } : { superFeatures: e.sfs }
            pack = packWriter.appendNow(writer, id, e.payload, lengths[i]!, e.codec, extra, h)
          }
          if (e !== undefined) encoding.delete(h)
          if (pack === undefined) { lost = h; break }
          known.set(h, pack)
          chunks.push({ id, idHex: h, length: lengths[i]!, pack })
        }
        // the slot is free once the payloads are in the pack: copied, or written to its file (the
        // writes start before anything can fail or be interrupted here, so none outlives its bytes)
        const written = packWriter.writeQueued()
        held.delete(batch.batch.slot)
        if (written) void slotJob(batch.batch.slot, written)
        giveSlot(batch.batch.slot)
        if (lost !== undefined) return yield* corrupt(`chunk ${lost} was neither stored nor encoded`)
        yield* packWriter.sealFull
      })

      // The NAR cut into batches: each chunk copied once, from the cutter's window into its batch's
      // slot. The NAR goes to the cutter in pieces of at most PIECE bytes, a new batch started before
      // a piece when the batch has BATCH_BYTES: a piece makes at most PIECE + max bytes of chunks
      // (what the cutter held back is less than max), so a batch never outgrows its slot.
      const capacity = BATCH_BYTES + PIECE + info.chunking.max
      const held = new Set<BatchSlot>()
      let slot: BatchSlot | undefined
      let offsets: Array<number> = []
      let lengths: Array<number> = []
      let filled = 0
      // Buffer#copy of a whole buffer with a range is a memcpy; TypedArray#set into shared memory
      // (and Buffer#copy from a view) copies ~5x slower (0.15 against 0.03 CPU-s per GiB in cache)
      let whole: Buffer | undefined
      const take = (view: Uint8Array) => {
        if (whole?.buffer !== view.buffer) whole = Buffer.from(view.buffer)
        whole.copy(slot!.input, filled, view.byteOffset, view.byteOffset + view.length)
        offsets.push(filled)
        lengths.push(view.length)
        filled += view.length
      }
      // The NAR checked but not hashed here (`unhashed`): its sha256 is taken on a chunk worker, from
      // the batches (see NarPart), when the workers can hash
      // and nothing else hashes this stream anyway; else in the NAR check, on this thread.
      const unhashed = pi.narHash.algorithm === "sha256" && workers.hashesNar ? verifiedNarButHash(pi, storeDir, nar) : undefined
      const narId = unhashed ? workers.narStream() : -1
      const hashBytes: Array<Uint8Array> = []
      let narAt = 0
      let firstPatch = 0
      const narPart = (size: number): NarPart | undefined => {
        if (!unhashed) return undefined
        for (let i = hashBytes.length; i < normaliser.hashes.length; i++) hashBytes.push(new Uint8Array(Buffer.from(normaliser.hashes[i]!, "latin1")))
        const positions = normaliser.positions
        while (firstPatch < positions.length && positions[firstPatch]!.offset + HASH_LENGTH <= narAt) firstPatch++
        const patches = Denormaliser.patches(hashBytes, positions, narAt, narAt + size, firstPatch)
        narAt += size
        return { stream: narId, patches }
      }
      const finish = (out: Array<Cut>) => {
        if (slot && filled > 0) {
          const batch: Batch = { slot, size: filled, offsets, lengths }
          out.push({ batch, hashed: workers.hash(batch, narPart(filled), speculate()) })
          slot = undefined
          offsets = []
          lengths = []
          filled = 0
        }
      }
      const room = (out: Array<Cut>) => Effect.gen(function*() {
        if (filled >= BATCH_BYTES) finish(out)
        if (!slot) { slot = yield* takeSlot(capacity); held.add(slot) }
      })
      const cutPiece = (piece: Uint8Array) => Effect.gen(function*() {
        const out: Array<Cut> = []
        for (const p of normaliser.push(piece)) {
          for (let at = 0; at < p.length; at += PIECE) {
            yield* room(out)
            chunker.push(p.subarray(at, at + PIECE), take)
          }
        }
        return out
      })
      const batches = Stream.concat(
        Stream.mapEffect(unhashed ?? verifiedNar(pi, storeDir, nar), cutPiece),
        Stream.unwrap(Effect.gen(function*() {
          const out: Array<Cut> = []
          yield* room(out)
          chunker.push(normaliser.end(), take)
          chunker.end(take)
          finish(out)
          return Stream.make(out)
        }))
      ).pipe(Stream.flattenIterable)
      let digested = false
      yield* batches.pipe(
        Stream.mapEffect(hashBatch, { concurrency: 3 }),
        Stream.mapEffect(decide),
        Stream.mapEffect(encode, { concurrency: 3 }),
        Stream.runForEach(append),
        Effect.andThen(Effect.gen(function*() {
          if (!unhashed) return
          // the check verifiedNar makes, with the hash from the worker (before anything is committed)
          digested = true
          const actual = Hash.make("sha256", yield* workers.narDigest(narId, false))
          if (!Hash.equals(actual, pi.narHash)) {
            return yield* narHashMismatch(print(pi.path), pi.narHash, actual)
          }
        })),
        Effect.ensuring(Effect.sync(() => { for (const s of held) giveSlot(s); held.clear() })),
        Effect.ensuring(Effect.suspend(() => unhashed && !digested ? Effect.ignore(workers.narDigest(narId, true)) : Effect.void)))

      const packNames = [...new Set(chunks.map((c) => c.pack))]
      yield* packWriter.awaitSealed(packNames)
      const packIndex = new Map(packNames.map((p, i) => [p, i]))
      const manifest: Manifest = {
        narSize: pi.narSize,
        hashes: normaliser.hashes,
        positions: normaliser.positions,
        packs: packNames.map((p) => new Uint8Array(Buffer.from(p, "hex"))),
        chunks: chunks.map((c): ManifestChunk => ({ id: c.id, length: c.length, pack: packIndex.get(c.pack)! }))
      }
      return { manifest, packOf: new Map(chunks.map((c) => [c.idHex, c.pack])) }
    })

    /** The manifest naming the packs the chunks are in now. */
    const withPacks = (manifest: Manifest, packOf: ReadonlyMap<string, string>, moved: ReadonlyMap<string, string>): Manifest => {
      const names = [...new Set(manifest.chunks.map((c) => { const h = hex(c.id); return moved.get(h) ?? packOf.get(h)! }))]
      const at = new Map(names.map((n, i) => [n, i]))
      return {
        ...manifest,
        packs: names.map((n) => new Uint8Array(Buffer.from(n, "hex"))),
        chunks: manifest.chunks.map((c) => { const h = hex(c.id); return { ...c, pack: at.get(moved.get(h) ?? packOf.get(h)!)! } })
      }
    }

    const addToStore = <E, R>(pi: PathInfo, nar: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, StoreError | E, R> => Effect.gen(function*() {
      if (yield* isValidPath(pi.path)) return
      const hashPart = pi.path.hashPart
      // Committed by an add that died before publishing: publish it now.
      const row = yield* index.path(hashPart)
      if (Option.isSome(row) && row.value.state === 0 && row.value.store_path === print(pi.path)) {
        return yield* publish(hashPart, row.value.nar_info, row.value.manifest)
      }
      const writer = randomBytes(8).toString("hex")
      yield* index.registerWriter(writer, owner, Date.now())
      activeWriters.add(writer)
      yield* Effect.gen(function*() {
        const { manifest, packOf } = yield* ingest(pi, nar, writer)
        const narInfo = narInfoText(pi)
        const committed = yield* index.commitPath({
          hashPart, storePath: print(pi.path), narInfo, manifest: encodeManifest(manifest), narSize: pi.narSize,
          chunks: packOf, references: pi.references.map((r) => r.hashPart)
        }, Date.now(), (moved) => encodeManifest(withPacks(manifest, packOf, moved)))
        if (committed === undefined) return
        yield* publish(hashPart, narInfo, committed)
      }).pipe(Effect.ensuring(Effect.andThen(Effect.sync(() => activeWriters.delete(writer)), Effect.ignore(index.unregisterWriter(writer, Date.now())))))
    })

    const addSignatures = (path: StorePath.StorePath, signatures: ReadonlyArray<string>) => Effect.gen(function*() {
      const record = yield* recordFor(path)
      const ni = { ...record.narInfo, sigs: [...new Set([...record.narInfo.sigs, ...signatures])] }
      const text = NarInfo.print(ni)
      yield* index.setNarInfo(path.hashPart, text)
      const row = yield* index.path(path.hashPart)
      if (Option.isNone(row)) return yield* notValid(path)
      yield* publish(path.hashPart, text, row.value.manifest)
    })

    const write = makeStoreWrite(read, { addToStore, addSignatures })

    // ---- maintenance --------------------------------------------------------------------
    const remove = (key: string) => blobs.remove ? blobs.remove(key) : Effect.fail(new Unsupported({ store: uri, operation: "deleting blobs" }))

    /** Temporary files that killed writers left in a directory store (`.tmp-<pid>-…` of a dead pid). */
    const removeDeadTemporaries = Effect.sync(() => {
      if (!blobs.localPath) return
      for (const sub of ["packs", "paths"]) {
        const dir = dirname(blobs.localPath(`${sub}/x`))
        let names: Array<string> = []
        try { names = readdirSync(dir) } catch { continue }
        for (const name of names) {
          const m = /^\.tmp-(\d+)-/.exec(name)
          if (m && ownerGone(`${hostname()}:${m[1]}`, 0)) rmSync(join(dir, name), { force: true })
        }
      }
    })

    /** Finishes what killed writers, deleters and repackers left half done. */
    const settle = Effect.gen(function*() {
      yield* removeDeadTemporaries
      for (const p of yield* index.unsettledPaths()) {
        if (p.state === 0) yield* publish(p.hash_part, p.nar_info, p.manifest)
        else if (p.state === 2) yield* finishDelete(p.hash_part, p.manifest)
      }
      for (const pack of yield* index.unsettledPacks()) {
        if (pack.state === "writing") {
          if (!ownerGone(pack.owner, pack.created)) continue
          yield* remove(packKey(pack.name, 1))
          yield* remove(packIndexKey(pack.name))
          yield* index.dropPack(pack.name)
          continue
        }
        if (pack.next_version !== null) {
          // a rewrite that did not finish: the current version stays; put its index back
          yield* writePackIndex(pack.name, pack.version)
          yield* remove(packKey(pack.name, pack.next_version))
          yield* index.setNextVersion(pack.name, null)
        }
        if (pack.stale_version !== null) {
          yield* remove(packKey(pack.name, pack.stale_version))
          yield* index.clearStale(pack.name)
        }
      }
    })

    const writePackIndex = (name: string, version: number) => Effect.gen(function*() {
      const rows = yield* index.packChunks(name)
      const entries = rows.map((r): PackEntry => ({ id: r.id, offset: r.off, stored: r.stored, raw: r.raw, codec: r.codec, base: r.base }))
      yield* blobs.putBytes(packIndexKey(name), encodePackIndex({ name: Buffer.from(name, "hex"), version, entries }), "application/octet-stream")
    })

    const finishDelete = (hashPart: string, manifestBytes: Uint8Array) => Effect.gen(function*() {
      const manifest = decodeManifest(manifestBytes)
      if (Result.isFailure(manifest)) return yield* corrupt(`manifest of ${hashPart}: ${manifest.failure.message}`)
      records.delete(hashPart)
      yield* remove(pathKey(hashPart))
      yield* index.finishDelete(hashPart, [...new Set(manifest.success.chunks.map((c) => hex(c.id)))], Date.now())
    })

    const deletePaths = (paths: ReadonlyArray<StorePath.StorePath>) => Effect.gen(function*() {
      const doomed = new Set(paths.map((p) => p.hashPart))
      const rows = yield* Effect.forEach(paths, (p) => Effect.flatMap(index.path(p.hashPart), (row) =>
        Option.isSome(row) && row.value.store_path === print(p) && row.value.state !== 2 ? Effect.succeed(row.value) : Effect.fail(notValid(p))))
      for (const p of paths) {
        const users = (yield* index.referrers(p.hashPart)).filter((r) => !doomed.has(StorePath.parse(r, storeDir).pipe(Result.map((x) => x.hashPart), Result.getOrElse(() => ""))))
        if (users.length > 0) return yield* new StoreIoError({ store: uri, operation: `delete ${print(p)}`, reason: `it is still referenced by ${users[0]}` })
      }
      for (const row of rows) {
        yield* index.setState(row.hash_part, 2)
        yield* finishDelete(row.hash_part, row.manifest)
      }
      return rows.map((r) => r.store_path)
    })

    /** Holds the store's maintenance lease (one GC or repack at a time, across processes) while `body` runs. */
    const withLease = <A>(body: Effect.Effect<A, StoreError>) => Effect.acquireUseRelease(
      Effect.flatMap(index.takeLease(owner, Date.now(), (holder, at) => ownerGone(holder, at)), (taken) => taken
        ? Effect.void : Effect.fail(new StoreIoError({ store: uri, operation: "garbage collection", reason: "another garbage collection or repack is running on this store" }))),
      () => body,
      () => Effect.ignore(index.dropLease(owner)))

    const threshold = options.repackThreshold ?? 0.5

    /** Rewrites the pack without the chunks that lost their rows (or deletes it when none is left). */
    const repackOne = (name: string) => Effect.gen(function*() {
      const pack = yield* index.pack(name)
      if (Option.isNone(pack)) return { copied: 0, freed: 0, deleted: false }
      const { version, size } = pack.value
      const rows = yield* index.packChunks(name)
      if (rows.length === 0) {
        yield* remove(packIndexKey(name))
        yield* remove(packKey(name, version))
        const dropped = yield* index.dropPack(name)
        return { copied: 0, freed: dropped ? size : 0, deleted: dropped }
      }
      const getRange = blobs.getRange
      if (!getRange) return yield* new Unsupported({ store: uri, operation: "reading pack ranges" })
      const next = version + 1
      yield* index.setNextVersion(name, next)
      const parts: Array<Uint8Array> = []
      const offsets: Array<{ id: Uint8Array; offset: number }> = []
      const entries: Array<PackEntry> = []
      let at = 0
      // neighbouring kept chunks are read together
      for (let i = 0; i < rows.length;) {
        let j = i + 1
        let length = rows[i]!.stored
        while (j < rows.length && rows[j]!.off === rows[j - 1]!.off + rows[j - 1]!.stored && length < 8 << 20) { length += rows[j]!.stored; j++ }
        parts.push(yield* getRange(packKey(name, version), rows[i]!.off, length))
        for (let k = i; k < j; k++) {
          const r = rows[k]!
          offsets.push({ id: r.id, offset: at })
          entries.push({ id: r.id, offset: at, stored: r.stored, raw: r.raw, codec: r.codec, base: r.base })
          at += r.stored
        }
        i = j
      }
      yield* putParts(blobs, packKey(name, next), parts)
      yield* blobs.putBytes(packIndexKey(name), encodePackIndex({ name: Buffer.from(name, "hex"), version: next, entries }), "application/octet-stream")
      yield* index.finishRepack(name, next, at, offsets)
      yield* remove(packKey(name, version))
      yield* index.clearStale(name)
      return { copied: at, freed: size - at, deleted: false }
    })

    const candidates = (extraDead: ReadonlyMap<string, number> = new Map()) => Effect.map(index.packs(), (packs) =>
      packs.filter((p) => p.state === "sealed" && p.size > 0 && (p.rows_bytes - (extraDead.get(p.name) ?? 0)) / p.size < threshold))

    const repackAll = (dryRun: boolean, extraDead?: ReadonlyMap<string, number>) => Effect.gen(function*() {
      const packs = yield* candidates(extraDead)
      if (dryRun) {
        const freed = packs.reduce((n, p) => n + p.size - Math.max(0, p.rows_bytes - (extraDead?.get(p.name) ?? 0)), 0)
        const kept = packs.reduce((n, p) => n + Math.max(0, p.rows_bytes - (extraDead?.get(p.name) ?? 0)), 0)
        return { dryRun, packsRewritten: packs.filter((p) => p.rows_bytes - (extraDead?.get(p.name) ?? 0) > 0).length, packsDeleted: packs.filter((p) => p.rows_bytes - (extraDead?.get(p.name) ?? 0) <= 0).length, bytesCopied: kept, bytesFreed: freed } satisfies RepackResult
      }
      let rewritten = 0, deleted = 0, copied = 0, freed = 0
      for (const p of packs) {
        const r = yield* repackOne(p.name)
        if (r.deleted) deleted++
        else if (r.copied > 0) rewritten++
        copied += r.copied
        freed += r.freed
      }
      return { dryRun, packsRewritten: rewritten, packsDeleted: deleted, bytesCopied: copied, bytesFreed: freed } satisfies RepackResult
    })

    /** Dead chunks that no running ingest can still want: their rows go (their bytes, at the next repack). */
    const horizon = Effect.gen(function*() {
      const now = Date.now()
      const writers = yield* index.writers()
      const gone = writers.filter((w) => ownerGone(w.owner, w.heartbeat, now))
      yield* index.reapWriters(gone.map((w) => w.id), now)
      const live = writers.filter((w) => !gone.includes(w))
      return live.length === 0 ? now + 1 : Math.min(...live.map((w) => w.started))
    })

    const collectGarbage = (gcOptions: { readonly dryRun?: boolean } = {}): Effect.Effect<GcResult & { readonly repack: RepackResult }, StoreError> => withLease(Effect.gen(function*() {
      if (gcOptions.dryRun) {
        const limit = yield* horizon
        const dead = yield* index.db.all<{ pack: string; n_bytes: number }>(
          "select pack, sum(stored) as n_bytes from chunks where dead_since is not null and dead_since < ? and refs = 0 group by pack", [limit])
        const repack = yield* repackAll(true, new Map(dead.map((d) => [d.pack, Number(d.n_bytes)])))
        return { roots: [], deleted: [], bytesFreed: repack.bytesFreed, repack }
      }
      yield* settle
      // a batch at a time; the horizon again each time, so bases whose last delta chunk went go too
      while ((yield* index.deleteDead(yield* horizon)).count > 0) { /* next batch */ }
      const repack = yield* repackAll(false)
      return { roots: [], deleted: [], bytesFreed: repack.bytesFreed, repack }
    }))

    const verify: StoreMaintenanceApi["verify"] = (verifyOptions) => Effect.gen(function*() {
      const rows = yield* index.db.all<{ store_path: string }>("select store_path from paths where state = 1 order by store_path")
      const problems: Array<VerifyProblem> = []
      for (const [i, row] of rows.entries()) {
        verifyOptions?.onProgress?.(i, rows.length)
        const path = StorePath.parse(row.store_path, storeDir)
        if (Result.isFailure(path)) { problems.push({ path: row.store_path, problem: "bad-row", detail: path.failure.message }); continue }
        const result = yield* Effect.result(Stream.runDrain(read.narFromPath(path.success)))
        if (Result.isFailure(result)) {
          const e = result.failure
          problems.push({ path: row.store_path, problem: e._tag === "HashMismatch" ? (e.what.includes("size") ? "size-mismatch" : "hash-mismatch") : e._tag === "PathNotValid" ? "missing" : "unreadable", detail: e.message })
        }
      }
      return { checked: rows.length, problems }
    })

    const stats = () => Effect.gen(function*() {
      const s = yield* index.stats()
      const stored = s.packBytes + s.recordBytes
      return {
        paths: s.paths,
        logicalBytes: s.logicalBytes,
        storedBytes: stored,
        packBytes: s.packBytes,
        recordBytes: s.recordBytes,
        dedupRatio: stored > 0 ? s.logicalBytes / stored : 0,
        chunks: s.chunks,
        packs: s.packs,
        liveBytes: s.liveBytes,
        liveFraction: s.packBytes > 0 ? s.liveBytes / s.packBytes : 1,
        deltaChunks: s.deltaChunks,
        deltaBytes: s.deltaBytes,
        deltaRawBytes: s.deltaRawBytes,
        reclaimableBytes: s.packBytes - s.rowBytes
      }
    })

    // What a killed writer committed but did not publish is published now.
    yield* Effect.ignore(Effect.forEach(yield* index.unsettledPaths(), (p) => p.state === 0 ? publish(p.hash_part, p.nar_info, p.manifest) : Effect.void, { discard: true }))

    const maintenance: StoreMaintenanceApi = {
      verify,
      collectGarbage,
      deletePaths,
      repack: (o) => withLease(Effect.andThen(settle, repackAll(o?.dryRun ?? false))),
      stats
    }
    return { read, write, maintenance }
  })
