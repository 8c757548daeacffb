/**
 * Serving a path's NAR from its chunks into buffers that are reused (`StoredNar.feed`, what
 * `b3 serve` sends): the manifest's chunks are planned in runs of neighbouring chunks of one pack
 * (up to 4 MiB), each run read with one read into a slot shared with the chunk workers, a few runs
 * ahead; a run whose chunks are all stored raw goes out as read (the hashes put back in place), as
 * does, for the zstd stream, a run of zstd frames holding no hash; any other is decoded by a worker
 * into the slot's other half — zstd frames and deltas
 * decompressed, or for the zstd stream, frames passed on as stored, raw chunks framed as raw
 * blocks and those with hashes or stored as deltas compressed again (level 1). The consumer (the
 * socket) takes one run at a time; the slot goes back once it has. Nothing is allocated per chunk,
 * and nothing per run but a few small arrays.
 *
 * A pack rewritten (repacked) while the path is read is found again through the fresh pack
 * indexes, as the streaming reader does.
 */
import { Effect, Stream } from "effect"
import { open } from "node:fs/promises"
import { CODEC_DELTA, CODEC_RAW, CODEC_ZSTD, type Manifest } from "../../core/chunks/formats.ts"
import { Denormaliser, HASH_LENGTH } from "../../core/chunks/normalise.ts"
import { StoreIoError, type StoreError } from "../../services/store-errors.ts"
import type { BlobStore } from "../binary-cache/blob-store.ts"
import { type BatchSlot, type ChunkWorkers, giveSlot, slotJob, takeSlot } from "./chunk-workers.ts"
import { type BaseReader, type ChunkPlace, packKey } from "./packs.ts"

export type FeedMode = "plain" | "zstd"

export interface FeedOptions {
  readonly uri: string
  readonly blobs: BlobStore
  readonly bases: BaseReader
  readonly workers: ChunkWorkers
  /** The chunks' places again (fresh pack indexes), for a pack rewritten while we read. */
  readonly relocate: () => Effect.Effect<Array<ChunkPlace>, StoreError>
  /** Runs read ahead of the one being sent (default 3). */
  readonly readAhead?: number
}

/** Bytes of a run (stored, and what it gives out) a slot holds. */
const RUN = 4 << 20

/** What a chunk becomes in the zstd stream, at most. */
const frameBound = (place: ChunkPlace, touched: boolean) =>
  place.codec === CODEC_ZSTD && !touched ? place.stored
    : place.codec === CODEC_RAW && !touched ? place.raw + 9 + 3 * Math.ceil(place.raw / (128 * 1024))
    : place.raw + (place.raw >> 7) + 512

interface Planned {
  /** Index in the manifest of the run's first chunk, and how many. */
  readonly first: number
  readonly count: number
  /** The run's bytes in the NAR. */
  readonly start: number
  readonly end: number
  readonly stored: number
  readonly out: number
  /** The hashes to put back, at offsets from `start`. */
  patches: Array<{ readonly at: number; readonly bytes: Uint8Array }>
}

/** The manifest's chunks in runs: neighbours in one pack version, up to RUN bytes stored and given out. */
const plan = (places: ReadonlyArray<ChunkPlace>, mode: FeedMode, manifest: Manifest): Array<Planned> => {
  const positions = manifest.positions
  const runs: Array<Planned> = []
  let run: { first: number; count: number; start: number; end: number; stored: number; out: number; patches: Planned["patches"] } | undefined
  let offset = 0
  let next = 0
  places.forEach((p, i) => {
    const start = offset
    offset += p.raw
    while (next < positions.length && positions[next]!.offset + HASH_LENGTH <= start) next++
    const touched = Denormaliser.touches(positions, start, offset, next)
    const out = mode === "plain" ? p.raw : frameBound(p, touched)
    const prev = run === undefined ? undefined : places[run.first + run.count - 1]!
    if (run && prev && prev.pack === p.pack && prev.version === p.version && prev.offset + prev.stored === p.offset && run.stored + p.stored <= RUN && run.out + out <= RUN) {
      run.count++
      run.end = offset
      run.stored += p.stored
      run.out += out
    } else {
      run = { first: i, count: 1, start, end: offset, stored: p.stored, out, patches: [] }
      runs.push(run)
    }
  })
  if (positions.length > 0) {
    const hashes = manifest.hashes.map((h) => new Uint8Array(Buffer.from(h, "latin1")))
    let from = 0
    for (const r of runs) {
      while (from < positions.length && positions[from]!.offset + HASH_LENGTH <= r.start) from++
      r.patches = Denormaliser.patches(hashes, positions, r.start, r.end, from)
    }
  }
  return runs
}

/** Reads the places (one after the other in packs) into `into` from its start; their offsets there. */
const readInto = (options: FeedOptions, slot: BatchSlot, places: ReadonlyArray<ChunkPlace>): Effect.Effect<Array<number>, StoreError> => Effect.gen(function*() {
  const offsets: Array<number> = []
  const groups: Array<{ place: ChunkPlace; length: number; at: number }> = []
  let at = 0
  for (const p of places) {
    offsets.push(at)
    const last = groups[groups.length - 1]
    if (last && last.place.pack === p.pack && last.place.version === p.version && last.place.offset + last.length === p.offset) last.length += p.stored
    else groups.push({ place: p, length: p.stored, at })
    at += p.stored
  }
  if (at > slot.input.length) return yield* new StoreIoError({ store: options.uri, operation: "read a pack", reason: `a run of ${at} bytes does not fit a ${slot.input.length}-byte buffer` })
  const { blobs } = options
  for (const g of groups) {
    const key = packKey(g.place.pack, g.place.version)
    const target = slot.input.subarray(g.at, g.at + g.length)
    if (blobs.localPath) {
      const file = blobs.localPath(key)
      yield* Effect.tryPromise({
        try: () => slotJob(slot, (async () => {
          const handle = await open(file, "r")
          try {
            let got = 0
            while (got < g.length) {
              const { bytesRead } = await handle.read(target, got, g.length - got, g.place.offset + got)
              if (bytesRead === 0) throw new Error(`the blob ends before byte ${g.place.offset + g.length}`)
              got += bytesRead
            }
          } finally { await handle.close() }
        })()),
        catch: (e) => new StoreIoError({ store: options.uri, operation: `read ${key} [${g.place.offset}, +${g.length})`, reason: e instanceof Error ? e.message : String(e) })
      })
    } else {
      const getRange = blobs.getRange
      if (!getRange) return yield* new StoreIoError({ store: options.uri, operation: "read a pack", reason: "this blob store cannot read ranges" })
      target.set(yield* getRange(key, g.place.offset, g.length))
    }
  }
  return offsets
})

/** Thrown through the stream when the consumer wants no more. */
class Stopped { readonly _tag = "Stopped" }

/**
 * Feeds the NAR (`plain`) or its zstd frames (`zstd`) to `consume`, one run at a time; each piece
 * stays valid until the promise `consume` returns settles. `consume` stops it by resolving to "stop".
 */
export const feedNar = (options: FeedOptions, manifest: Manifest, places: ReadonlyArray<ChunkPlace>, mode: FeedMode, consume: (chunk: Uint8Array) => Promise<"stop" | undefined>): Effect.Effect<void, StoreError> =>
  Effect.suspend(() => {
    const runs = plan(places, mode, manifest)
    const held = new Set<BatchSlot>()
    let fresh: Effect.Effect<Array<ChunkPlace>, StoreError> | undefined

    const prepare = (run: Planned) => Effect.gen(function*() {
      const patches = run.patches
      const slot = yield* takeSlot(Math.max(RUN, run.stored, run.out))
      held.add(slot)
      let mine = places.slice(run.first, run.first + run.count)
      const offsets = yield* Effect.catch(readInto(options, slot, mine), (error) => Effect.gen(function*() {
        // a pack version gone (rewritten by a repack): where its chunks are now, once
        if (!(error instanceof StoreIoError)) return yield* error
        fresh ??= yield* Effect.cached(options.relocate())
        mine = (yield* fresh).slice(run.first, run.first + run.count)
        return yield* readInto(options, slot, mine)
      }))
      const size = mine.reduce((n, p) => n + p.stored, 0)
      // what goes out as read: raw chunks of the NAR (the hashes put back in place), or zstd frames without hashes
      if (mode === "plain" && mine.every((p) => p.codec === CODEC_RAW)) {
        for (const p of patches) slot.input.set(p.bytes, p.at)
        return { slot, bytes: slot.input.subarray(0, size) }
      }
      if (mode === "zstd" && patches.length === 0 && mine.every((p) => p.codec === CODEC_ZSTD)) return { slot, bytes: slot.input.subarray(0, size) }
      const dictionaries = yield* Effect.forEach(mine, (p) => p.codec === CODEC_DELTA && p.base ? options.bases.bytes(p.base) : Effect.succeed(undefined), { concurrency: 4 })
      const made = yield* options.workers.serve(slot, {
        mode,
        chunks: mine.map((p, k) => ({ offset: offsets[k]!, stored: p.stored, raw: p.raw, codec: p.codec, dictionary: dictionaries[k] })),
        patches
      })
      return { slot, bytes: slot.output.subarray(0, made) }
    })

    const deliver = ({ slot, bytes }: { slot: BatchSlot; bytes: Uint8Array }) =>
      Effect.flatMap(Effect.promise(() => consume(bytes)), (said) => {
        held.delete(slot)
        giveSlot(slot)
        return said === "stop" ? Effect.fail(new Stopped()) : Effect.void
      })

    return Stream.fromIterable(runs).pipe(
      Stream.mapEffect(prepare, { concurrency: options.readAhead ?? 3 }),
      Stream.runForEach(deliver),
      Effect.catch((e) => (e instanceof Stopped ? Effect.void : Effect.fail(e))),
      Effect.ensuring(Effect.sync(() => { for (const s of held) giveSlot(s); held.clear() })))
  })
