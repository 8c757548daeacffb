/**
 * Packs: chunks are appended to one open pack shared by every ingest of the store (so small paths
 * share packs); a pack is sealed — uploaded as one blob, then its index blob, then recorded in the
 * chunk index — when it reaches its target size, or sooner when an ingest that put a chunk in it
 * needs it durable to commit. In a directory store a pack is written into its file as it fills,
 * straight from the buffers its chunks are in (pack-file.ts), and sealing makes the file durable and
 * renames it into place; elsewhere (S3) at most a few packs are held in memory (the open one and
 * those being uploaded). Either way memory stays flat whatever the size of the NARs.
 *
 * Reading: a path's chunks are located through each pack's index blob (cached, and fetched again
 * when a pack was rewritten under us), read with ranged reads that take runs of neighbouring
 * chunks at once, a few runs ahead, and decompressed on libuv's threads.
 */
import { Deferred, Effect, Exit, Option, Semaphore, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { constants, zstdCompress, zstdDecompress } from "node:zlib"
import { hex } from "../../core/chunks/binary.ts"
import { type BaseRef, CODEC_DELTA, CODEC_RAW, CODEC_ZSTD, type Codec, decodePackIndex, encodePackIndex, type Manifest, type PackEntry, rawZstdFrame } from "../../core/chunks/formats.ts"
import { Denormaliser } from "../../core/chunks/normalise.ts"
import { StoreCorrupt, StoreIoError, type StoreError } from "../../services/store-errors.ts"
import type { BlobStore } from "../binary-cache/blob-store.ts"
import type { ChunkIndex, SealEntry } from "./chunk-index.ts"
import { PackFile } from "./pack-file.ts"

export const packKey = (name: string, version: number) => `packs/${name}-${version}.pack`
export const packIndexKey = (name: string) => `packs/${name}.idx`
export const pathKey = (hashPart: string) => `paths/${hashPart}.b3p`

const io = (uri: string, operation: string) => (e: unknown) =>
  new StoreIoError({ store: uri, operation, reason: e instanceof Error ? e.message : String(e) })

/** One zstd frame of the bytes; with `dictionary`, compressed against those bytes as raw content. */
export const zstd = (uri: string, bytes: Uint8Array, level: number, dictionary?: Uint8Array): Effect.Effect<Uint8Array, StoreIoError> =>
  Effect.callback<Uint8Array, StoreIoError>((resume) => {
    // one output buffer (zlib's default of 16 KiB is a trip to the thread pool and back per 16 KiB),
    // tables sized by the pledged size
    zstdCompress(bytes, { chunkSize: Math.max(64, bytes.length + (bytes.length >> 7) + 512), pledgedSrcSize: bytes.length, params: { [constants.ZSTD_c_compressionLevel]: level }, ...(dictionary ? { dictionary } : {}) }, (error, out) =>
      resume(error ? Effect.fail(io(uri, "compress a chunk")(error)) : Effect.succeed(new Uint8Array(out.buffer, out.byteOffset, out.length))))
  })

export const unzstd = (uri: string, bytes: Uint8Array, size: number, dictionary?: Uint8Array): Effect.Effect<Uint8Array, StoreIoError> =>
  Effect.callback<Uint8Array, StoreIoError>((resume) => {
    zstdDecompress(bytes, { chunkSize: Math.max(64, size), maxOutputLength: Math.max(size, 1), ...(dictionary ? { dictionary } : {}) }, (error, out) =>
      resume(error ? Effect.fail(io(uri, "decompress chunks")(error))
        : out.length !== size ? Effect.fail(io(uri, "decompress chunks")(`got ${out.length} bytes, expected ${size}`))
        : Effect.succeed(new Uint8Array(out.buffer, out.byteOffset, out.length))))
  })

/** Stores a blob from parts: written as they are where the blob store can, else joined first (one PUT). */
export const putParts = (blobs: BlobStore, key: string, parts: ReadonlyArray<Uint8Array>) => {
  if (blobs.putParts) return blobs.putParts(key, parts, "application/octet-stream")
  if (parts.length === 1) return blobs.putBytes(key, parts[0]!, "application/octet-stream")
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) { body.set(part, at); at += part.length }
  return blobs.putBytes(key, body, "application/octet-stream")
}

/**
 * Packs are written into segments of a few MiB, reused from pack to pack (a pack's bytes are copies
 * of its chunks' payloads, so the buffers those came in are free at once).
 */
const SEGMENT = 4 << 20
const freeSegments: Array<Uint8Array> = []
const takeSegment = (size: number) => size <= SEGMENT && freeSegments.length > 0 ? freeSegments.pop()! : new Uint8Array(Math.max(size, SEGMENT))
const giveSegments = (segments: ReadonlyArray<{ readonly buffer: Uint8Array }>) => {
  for (const s of segments) if (s.buffer.length === SEGMENT && freeSegments.length < 24) freeSegments.push(s.buffer)
}

interface OpenPack {
  readonly name: string
  /** The pack's bytes so far: `used` bytes of each segment (none when they go straight to `file`). */
  readonly segments: Array<{ readonly buffer: Uint8Array; used: number }>
  /** Where its bytes are written as they come, when the blobs are local files. */
  readonly file: PackFile | undefined
  readonly entries: Array<SealEntry>
  size: number
  readonly done: Deferred.Deferred<void, StoreError>
}

export interface PackWriterOptions {
  readonly uri: string
  readonly blobs: BlobStore
  readonly index: ChunkIndex
  /** Who writes (host:pid), recorded with each pack being uploaded. */
  readonly owner: string
  /** Seal a pack once it holds this many bytes. */
  readonly packSize: number
  /** Packs being uploaded at once (each held in memory until stored). */
  readonly uploads?: number
}

export const makePackWriter = (options: PackWriterOptions) => Effect.gen(function*() {
  const { uri, blobs, index } = options
  let current: OpenPack | undefined
  /** Packs not yet sealed (open or uploading), by name. */
  const unsealed = new Map<string, OpenPack>()
  /** Packs whose seal failed: an ingest that used them must fail too. */
  const failed = new Map<string, StoreError>()
  /** Chunks in unsealed packs: another ingest here may use them (and then waits for the seal). */
  const pending = new Map<string, string>()
  const uploadSlots = yield* Semaphore.make(options.uploads ?? 2)

  /** Blob files the packs are written into as they fill (a directory store), or undefined (segments, one PUT at the seal). */
  const localPath = blobs.localPath

  const seal = (pack: OpenPack): Effect.Effect<void, StoreError> => Effect.gen(function*() {
    yield* index.beginPack(pack.name, options.owner, Date.now())
    const file = pack.file
    if (file) yield* Effect.tryPromise({ try: () => file.finish(), catch: io(uri, `write pack ${pack.name}`) })
    else yield* putParts(blobs, packKey(pack.name, 1), pack.segments.map((s) => s.buffer.subarray(0, s.used)))
    giveSegments(pack.segments.splice(0))
    // off this thread where the blobs can (a file's fsync would hold up the ingests)
    yield* putParts(blobs, packIndexKey(pack.name), [encodePackIndex({ name: Buffer.from(pack.name, "hex"), version: 1, entries: pack.entries })])
    yield* index.sealPack(pack.name, pack.size, pack.entries, Date.now())
  })

  /**
   * Starts sealing a pack in the background (holding an upload slot); its `done` says how it went.
   * Uninterruptible: an ingest interrupted while it waits for a slot must not leave the pack neither
   * open nor sealing (the store's closing flush would wait for it forever).
   */
  const startSeal = (pack: OpenPack) => Effect.uninterruptible(Effect.gen(function*() {
    if (current === pack) current = undefined
    const at = full.indexOf(pack)
    if (at >= 0) full.splice(at, 1)
    yield* uploadSlots.take(1)
    yield* Effect.forkDetach(seal(pack).pipe(
      Effect.onExit((exit) => Effect.gen(function*() {
        for (const e of pack.entries) if (pending.get(hex(e.id)) === pack.name) pending.delete(hex(e.id))
        unsealed.delete(pack.name)
        pack.segments.length = 0
        if (Exit.isFailure(exit) && pack.file) yield* Effect.promise(() => pack.file!.discard().catch(() => undefined))
        if (Exit.isFailure(exit)) {
          const error = Option.getOrUndefined(Exit.findErrorOption(exit)) ?? new StoreIoError({ store: uri, operation: `store pack ${pack.name}`, reason: "interrupted" })
          failed.set(pack.name, error)
        }
        yield* Deferred.done(pack.done, Exit.isFailure(exit) ? Exit.fail(failed.get(pack.name)!) : Exit.void)
        yield* uploadSlots.release(1)
      }))))
  }))

  /** Packs that reached their size, closed to appends, not yet sealing (`sealFull` starts them). */
  const full: Array<OpenPack> = []

  /** Packs with payloads queued for their file (`writeQueued` writes them). */
  const queued = new Set<OpenPack>()

  /**
   * Appends a chunk to the open pack (a new one when there is none); returns the pack's name. The
   * payload is copied into the pack's segments, or — when the pack goes straight to its file — queued
   * for `writeQueued`, and must then stay as it is until that write is done. A pack that reaches
   * its size is closed (`sealFull` seals it). A delta chunk names its base; a whole one may bring
   * its super-features (indexed when the pack is sealed). `idHex`: the id in hex, when the caller has it.
   */
  const appendNow = (writer: string, id: Uint8Array, payload: Uint8Array, raw: number, codec: Codec, extra: { readonly base?: BaseRef | undefined; readonly superFeatures?: ReadonlyArray<number> | undefined } = {}, idHex = hex(id)): string => {
    const already = pending.get(idHex)
    if (already !== undefined) return already
    if (!current) {
      const name = randomBytes(8).toString("hex")
      current = { name, segments: [], file: localPath ? new PackFile(localPath(packKey(name, 1))) : undefined, entries: [], size: 0, done: Deferred.makeUnsafe<void, StoreError>() }
      unsealed.set(current.name, current)
    }
    const pack = current
    pack.entries.push({ id, offset: pack.size, stored: payload.length, raw, codec, writer, base: extra.base, superFeatures: extra.superFeatures })
    if (pack.file) {
      pack.file.queue(payload, pack.size)
      queued.add(pack)
    } else {
      let segment = pack.segments[pack.segments.length - 1]
      if (!segment || segment.used + payload.length > segment.buffer.length) {
        segment = { buffer: takeSegment(payload.length), used: 0 }
        pack.segments.push(segment)
      }
      segment.buffer.set(payload, segment.used)
      segment.used += payload.length
    }
    pack.size += payload.length
    pending.set(idHex, pack.name)
    if (pack.size >= options.packSize) {
      current = undefined
      full.push(pack)
    }
    return pack.name
  }

  /** Starts sealing the packs that are full (may wait for an upload slot). */
  const sealFull: Effect.Effect<void> = Effect.suspend(() => full.length === 0 ? Effect.void : Effect.andThen(startSeal(full[0]!), sealFull))

  /**
   * Starts writing the payloads `appendNow` queued for pack files; the promise (never rejected: a
   * failed write fails the pack's seal) settles once they are written and their buffers are free,
   * undefined when nothing was queued (payloads copied, buffers free at once).
   */
  const writeQueued = (): Promise<void> | undefined => {
    if (queued.size === 0) return undefined
    const writes = [...queued].map((pack) => pack.file!.write())
    queued.clear()
    return writes.length === 1 ? writes[0] : Promise.all(writes).then(() => undefined)
  }

  return {
    /** Where a chunk already written here (maybe not yet sealed) is: its pack's name. */
    pendingPack: (id: string) => pending.get(id),
    appendNow,
    writeQueued,
    sealFull,
    /** Waits until these packs are sealed (sealing the open one now if it is among them). */
    awaitSealed: (names: Iterable<string>) => Effect.gen(function*() {
      for (const name of names) {
        const error = failed.get(name)
        if (error) return yield* error
        const pack = unsealed.get(name)
        if (!pack) continue
        if (pack === current || full.includes(pack)) yield* startSeal(pack)
        yield* Deferred.await(pack.done)
      }
    }),
    /** Seals what is open and waits for every upload (when the store closes). */
    flush: Effect.gen(function*() {
      yield* sealFull
      if (current) yield* startSeal(current)
      for (const pack of [...unsealed.values()]) yield* Effect.ignore(Deferred.await(pack.done))
    })
  }
})

export type PackWriter = Effect.Success<ReturnType<typeof makePackWriter>>

/** Where a chunk is for reading. */
export interface ChunkPlace {
  readonly pack: string
  readonly version: number
  readonly offset: number
  readonly stored: number
  readonly raw: number
  readonly codec: Codec
  /** For a delta chunk: its base (hex id) and the base's pack. */
  readonly base?: { readonly id: string; readonly pack: string } | undefined
}

interface CachedIndex { readonly version: number; readonly byId: Map<string, PackEntry> }

/** Locates chunks through the packs' index blobs (what a reader without the database has). */
export const makePackLocator = (uri: string, blobs: BlobStore) => {
  const cache = new Map<string, CachedIndex>()
  const load = (name: string): Effect.Effect<CachedIndex, StoreError> => Effect.gen(function*() {
    const bytes = yield* blobs.getBytes(packIndexKey(name))
    if (Option.isNone(bytes)) return yield* new StoreCorrupt({ store: uri, reason: `pack ${name} has no index` })
    const decoded = decodePackIndex(bytes.value)
    if (decoded._tag === "Failure") return yield* new StoreCorrupt({ store: uri, reason: `pack ${name}: ${decoded.failure.message}` })
    const entry: CachedIndex = { version: decoded.success.version, byId: new Map(decoded.success.entries.map((e) => [hex(e.id), e])) }
    if (cache.size > 4096) cache.clear()
    cache.set(name, entry)
    return entry
  })
  return {
    forget: (name: string) => { cache.delete(name) },
    /** Where one chunk is in a pack (its index read again when the cached one lacks it). */
    place: (pack: string, id: string): Effect.Effect<ChunkPlace, StoreError> => Effect.gen(function*() {
      let idx = cache.get(pack) ?? (yield* load(pack))
      let e = idx.byId.get(id)
      if (!e) { idx = yield* load(pack); e = idx.byId.get(id) }
      if (!e) return yield* new StoreCorrupt({ store: uri, reason: `chunk ${id} is not in pack ${pack}` })
      return { pack, version: idx.version, offset: e.offset, stored: e.stored, raw: e.raw, codec: e.codec, base: e.base ? { id: hex(e.base.id), pack: hex(e.base.pack) } : undefined }
    }),
    /** Places of the manifest's chunks, in order. */
    places: (manifest: Manifest): Effect.Effect<Array<ChunkPlace>, StoreError> => Effect.gen(function*() {
      const names = manifest.packs.map((p) => hex(p))
      const indexes = yield* Effect.forEach(names, (n) => { const c = cache.get(n); return c ? Effect.succeed(c) : load(n) }, { concurrency: 8 })
      const out: Array<ChunkPlace> = []
      for (const c of manifest.chunks) {
        const id = hex(c.id)
        let idx = indexes[c.pack]!
        let e = idx.byId.get(id)
        if (!e) { idx = indexes[c.pack] = yield* load(names[c.pack]!); e = idx.byId.get(id) }
        if (!e) return yield* new StoreCorrupt({ store: uri, reason: `chunk ${id} is not in pack ${names[c.pack]}` })
        if (e.raw !== c.length) return yield* new StoreCorrupt({ store: uri, reason: `chunk ${id} is ${e.raw} bytes in pack ${names[c.pack]}, the manifest says ${c.length}` })
        out.push({ pack: names[c.pack]!, version: idx.version, offset: e.offset, stored: e.stored, raw: e.raw, codec: e.codec, base: e.base ? { id: hex(e.base.id), pack: hex(e.base.pack) } : undefined })
      }
      return out
    })
  }
}

export type PackLocator = ReturnType<typeof makePackLocator>

/**
 * The raw bytes of base chunks (for reading delta chunks, and for compressing new ones against
 * them): located through the base's pack index, read with one ranged read, decompressed and
 * checked against their id; the last few are kept (a few MiB at most), as neighbouring delta
 * chunks often share bases.
 */
export const makeBaseReader = (uri: string, blobs: BlobStore, locator: PackLocator, keep = 16) => {
  const cache = new Map<string, Effect.Effect<Uint8Array, StoreError>>()
  const corrupt = (reason: string) => new StoreCorrupt({ store: uri, reason })
  const readAt = (place: ChunkPlace, id: string) => Effect.gen(function*() {
    const getRange = blobs.getRange
    if (!getRange) return yield* new StoreIoError({ store: uri, operation: "read a pack", reason: "this blob store cannot read ranges" })
    if (place.codec === CODEC_DELTA) return yield* corrupt(`base chunk ${id} is itself stored as a delta`)
    const stored = yield* getRange(packKey(place.pack, place.version), place.offset, place.stored)
    const raw = place.codec === CODEC_RAW ? stored : yield* unzstd(uri, stored, place.raw)
    if (createHash("sha256").update(raw).digest("hex") !== id) return yield* corrupt(`base chunk ${id} in pack ${place.pack} does not have its hash`)
    return raw
  })
  const fetch = (ref: { readonly id: string; readonly pack: string }) => Effect.gen(function*() {
    const place = yield* locator.place(ref.pack, ref.id)
    // a pack version rewritten under us: its index again, once
    return yield* Effect.catch(readAt(place, ref.id), (error) => error instanceof StoreIoError
      ? Effect.flatMap(Effect.suspend(() => { locator.forget(ref.pack); return locator.place(ref.pack, ref.id) }), (again) => readAt(again, ref.id))
      : Effect.fail(error))
  })
  return {
    bytes: (ref: { readonly id: string; readonly pack: string }): Effect.Effect<Uint8Array, StoreError> => Effect.suspend(() => {
      const hit = cache.get(ref.id)
      if (hit) { cache.delete(ref.id); cache.set(ref.id, hit); return hit }
      return Effect.flatMap(Effect.cached(fetch(ref)), (once) => {
        cache.set(ref.id, once)
        if (cache.size > keep) cache.delete(cache.keys().next().value!)
        return Effect.tapError(once, () => Effect.sync(() => { if (cache.get(ref.id) === once) cache.delete(ref.id) }))
      })
    })
  }
}

export type BaseReader = ReturnType<typeof makeBaseReader>

/** A run of chunks next to each other in one pack version: one ranged read. */
interface Run {
  readonly pack: string
  readonly version: number
  readonly offset: number
  length: number
  /** Index (in the manifest) of the run's first chunk. */
  readonly first: number
  readonly chunks: Array<ChunkPlace>
}

const runsOf = (places: ReadonlyArray<ChunkPlace>, maxRun: number, base = 0): Array<Run> => {
  const runs: Array<Run> = []
  let run: Run | undefined
  places.forEach((p, i) => {
    if (run && run.pack === p.pack && run.version === p.version && run.offset + run.length === p.offset && run.length + p.stored <= maxRun) {
      run.chunks.push(p)
      run.length += p.stored
    } else {
      run = { pack: p.pack, version: p.version, offset: p.offset, length: p.stored, first: base + i, chunks: [p] }
      runs.push(run)
    }
  })
  return runs
}

export interface ReadOptions {
  readonly uri: string
  readonly blobs: BlobStore
  /** Finds the chunks again (fresh pack indexes) when a pack was rewritten while we read. */
  readonly relocate: () => Effect.Effect<Array<ChunkPlace>, StoreError>
  /** Runs read ahead. */
  readonly readAhead?: number
  /** Give neighbouring raw chunks as one piece (not for the zstd stream, which frames each chunk). */
  readonly mergeRaw?: boolean
  /** The raw bytes of delta chunks' bases. */
  readonly bases: BaseReader
}

const MAX_RUN = 8 << 20

const readRun = (options: ReadOptions, run: Run): Effect.Effect<Array<{ place: ChunkPlace; payload: Uint8Array }>, StoreError> => {
  const getRange = options.blobs.getRange
  if (!getRange) return Effect.fail(new StoreIoError({ store: options.uri, operation: "read a pack", reason: "this blob store cannot read ranges" }))
  return Effect.map(getRange(packKey(run.pack, run.version), run.offset, run.length), (bytes) => {
    const out: Array<{ place: ChunkPlace; payload: Uint8Array }> = []
    let at = 0
    for (const c of run.chunks) { out.push({ place: c, payload: bytes.subarray(at, at + c.stored) }); at += c.stored }
    return options.mergeRaw ? mergeRaw(out) : out
  })
}

/** Neighbouring raw chunks as one (a view over both): fewer, larger pieces downstream. */
const mergeRaw = (chunks: Array<{ place: ChunkPlace; payload: Uint8Array }>) => {
  const out: Array<{ place: ChunkPlace; payload: Uint8Array }> = []
  for (const c of chunks) {
    const last = out[out.length - 1]
    if (last && last.place.codec === CODEC_RAW && c.place.codec === CODEC_RAW && last.payload.buffer === c.payload.buffer && last.payload.byteOffset + last.payload.length === c.payload.byteOffset) {
      const payload = new Uint8Array(c.payload.buffer, last.payload.byteOffset, last.payload.length + c.payload.length)
      out[out.length - 1] = { place: { ...last.place, stored: payload.length, raw: payload.length }, payload }
    } else out.push(c)
  }
  return out
}

/**
 * The manifest's chunks, in order, with their stored payloads (a zstd frame or the raw bytes).
 * A pack version that vanished under us (rewritten by a repack) makes us locate the chunks again,
 * once, and read the rest from where they are now.
 */
const storedChunks = (options: ReadOptions, places: ReadonlyArray<ChunkPlace>) => Stream.suspend(() => {
  let fresh: Effect.Effect<Array<ChunkPlace>, StoreError> | undefined
  const runs = runsOf(places, MAX_RUN)
  const fetch = (run: Run) => Effect.catch(readRun(options, run), (error) => Effect.gen(function*() {
    if (!fresh) fresh = yield* Effect.cached(options.relocate())
    else if (!(error instanceof StoreIoError)) return yield* error
    const now = (yield* fresh).slice(run.first, run.first + run.chunks.length)
    const parts = yield* Effect.forEach(runsOf(now, MAX_RUN, run.first), (r) => readRun(options, r))
    return parts.flat()
  }))
  return Stream.fromIterable(runs).pipe(
    Stream.mapEffect(fetch, { concurrency: options.readAhead ?? 3 }),
    Stream.flatMap((chunks) => Stream.fromIterable(chunks)))
})

/**
 * The manifest's normalised bytes in order: neighbouring raw chunks of a run as one piece (a view
 * of the bytes read), each zstd chunk decompressed on libuv's threads, a few at once.
 */
const normalisedPieces = (options: ReadOptions, places: ReadonlyArray<ChunkPlace>) =>
  storedChunks(options, places).pipe(
    Stream.mapEffect(({ place, payload }) => decode(options, place, payload), { concurrency: 4 }))

/** A chunk's normalised bytes from its stored payload (a delta chunk's base read first). */
const decode = (options: ReadOptions, place: ChunkPlace, payload: Uint8Array): Effect.Effect<Uint8Array, StoreError> => {
  if (place.codec === CODEC_RAW) return Effect.succeed(payload)
  if (place.codec === CODEC_ZSTD) return unzstd(options.uri, payload, place.raw)
  const base = place.base
  if (!base) return Effect.fail(new StoreCorrupt({ store: options.uri, reason: `a delta chunk in pack ${place.pack} names no base` }))
  return Effect.flatMap(options.bases.bytes(base), (dictionary) => unzstd(options.uri, payload, place.raw, dictionary))
}

/** The exact NAR: chunks read, decompressed and denormalised, in order. */
export const narStream = (options: ReadOptions, manifest: Manifest, places: ReadonlyArray<ChunkPlace>): Stream.Stream<Uint8Array, StoreError> =>
  Stream.suspend(() => {
    const denormaliser = new Denormaliser(manifest.hashes, manifest.positions)
    return Stream.map(normalisedPieces({ ...options, mergeRaw: true }, places), (bytes) => denormaliser.apply(bytes))
  })

/**
 * The NAR as zstd frames: a chunk stored compressed and holding no normalised hash is passed on as
 * stored; a raw one is wrapped in a frame of raw blocks; a delta chunk (whose frame needs its base
 * to decompress) is decoded and compressed again (level 1); one holding hashes is decompressed,
 * patched and compressed again (level 1).
 */
export const zstdNarStream = (options: ReadOptions, manifest: Manifest, places: ReadonlyArray<ChunkPlace>): Stream.Stream<Uint8Array, StoreError> =>
  Stream.suspend(() => {
    const denormaliser = new Denormaliser(manifest.hashes, manifest.positions)
    let offset = 0
    let next = 0
    // delta chunks are decoded first (their frames need the base), a few at once
    return storedChunks(options, places).pipe(
      Stream.mapEffect(({ place, payload }) => place.codec === CODEC_DELTA
        ? Effect.map(decode(options, place, payload), (raw) => ({ place: { ...place, codec: CODEC_RAW, stored: raw.length, base: undefined }, payload: raw, recompress: true }))
        : Effect.succeed({ place, payload, recompress: false }), { concurrency: 4 }),
      Stream.map(({ place, payload, recompress }) => {
        const start = offset
        offset += place.raw
        while (next < manifest.positions.length && manifest.positions[next]!.offset + 32 <= start) next++
        return { place, payload, recompress, touched: Denormaliser.touches(manifest.positions, start, start + place.raw, next) }
      }),
      Stream.mapEffect(({ place, payload, recompress, touched }) => Effect.gen(function*() {
        if (!touched) {
          denormaliser.skip(place.raw)
          return place.codec === CODEC_ZSTD ? payload : recompress ? yield* zstd(options.uri, payload, 1) : rawZstdFrame(payload)
        }
        const raw = place.codec === CODEC_RAW ? payload : yield* unzstd(options.uri, payload, place.raw)
        return yield* zstd(options.uri, denormaliser.apply(raw), 1)
      }), { concurrency: 1 }))
  })
