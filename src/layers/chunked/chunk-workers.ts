/**
 * Worker threads for the chunk store's per-chunk work, so that an ingest uses every core: the
 * thread that reads, checks, normalises and cuts the NAR hands batches of chunks to these and goes
 * on cutting. Three jobs, each over a batch (the chunks are moved to the worker and back, never
 * copied):
 *
 * - `hash`: each chunk's id (sha256);
 * - `features`: each chunk's super-features (resemblance.ts, the same code from its source text);
 * - `encode`: each chunk's stored form — zstd at the store's level, or a zstd delta against a base
 *   given as a dictionary, or the bytes as they are when zstd cannot shrink them (see `encodeKit`).
 *
 * Reading: `decode` turns a run of stored chunks (zstd frames, deltas with their bases, raw bytes)
 * back into the normalised bytes, all of the run in one message.
 *
 * One pool per process (the mechanism is src/nar/fs/thread-pool.ts: workers from source text, so
 * this works the same from the sources, tests and the bundle); idle workers do not keep the process
 * alive. A worker that dies fails the jobs it had (the ingest or read fails, and can be retried).
 */
import { Effect } from "effect"
import { availableParallelism } from "node:os"
import { looksIncompressible } from "../../core/chunks/fastcdc.ts"
import type { Codec } from "../../core/chunks/formats.ts"
import { resemblanceDeps, resemblanceKit, usableAsBase } from "../../core/chunks/resemblance.ts"
import { ThreadPool, type ThreadSlot } from "../../nar/fs/thread-pool.ts"
import { StoreIoError } from "../../services/store-errors.ts"

/** What an encoded chunk is: its codec and its payload (for raw, the chunk itself). */
export interface Encoded {
  readonly codec: Codec
  readonly payload: Uint8Array
  /** Whether zstd failed to shrink it (raw, or a frame ≥ 97% of it): after a few such, the next are probed first. */
  readonly poor: boolean
}

export interface EncodeOptions {
  readonly level: number
  /** Try a chunk's first 16 KiB at level 1 first, and store it raw when that does not shrink (after a run of poor chunks). */
  readonly probing: boolean
}

/**
 * How a chunk is stored, given its bytes and maybe a base's. Self-contained (uses only its
 * arguments): the workers run it from its source text, and this thread when the workers cannot.
 */
export const encodeKit = (deps: {
  readonly zstd: (bytes: Uint8Array, level: number, dictionary?: Uint8Array) => Uint8Array
  readonly looksIncompressible: (bytes: Uint8Array) => boolean
  readonly usableAsBase: (bytes: Uint8Array) => boolean
}) => (piece: Uint8Array, dictionary: Uint8Array | undefined, options: { readonly level: number; readonly probing: boolean }): { codec: 0 | 1 | 2; payload: Uint8Array; poor: boolean } => {
  const plain = (): Uint8Array => {
    if (deps.looksIncompressible(piece)) return piece
    if (options.probing && piece.length > 32 * 1024) {
      const sample = piece.subarray(0, 16 * 1024)
      if (deps.zstd(sample, 1).length >= sample.length * 0.95) return piece
    }
    return deps.zstd(piece, options.level)
  }
  const choose = (z: Uint8Array) => z.length >= piece.length * 0.97
    ? { codec: 0 as const, payload: piece, poor: true }
    : { codec: 1 as const, payload: z, poor: false }
  // With a base, the delta first: a good one (a quarter of the chunk or less) is kept without the
  // plain pass (compressing against a similar base rarely loses to compressing alone).
  if (dictionary === undefined || !deps.usableAsBase(dictionary)) return choose(plain())
  const delta = deps.zstd(piece, options.level, dictionary)
  if (delta.length * 4 <= piece.length) return { codec: 2, payload: delta, poor: false }
  const z = plain()
  if (delta.length < Math.min(z.length, piece.length)) return { codec: 2, payload: delta, poor: false }
  return choose(z)
}

/** zstd in one call, sized for the input (one output buffer, tables sized by the pledged size). */
export const zstdSync = (zlib: typeof import("node:zlib")) => (bytes: Uint8Array, level: number, dictionary?: Uint8Array): Uint8Array =>
  zlib.zstdCompressSync(bytes, {
    chunkSize: Math.max(64, bytes.length + (bytes.length >> 7) + 512),
    pledgedSrcSize: bytes.length,
    params: { [zlib.constants.ZSTD_c_compressionLevel]: level },
    ...(dictionary ? { dictionary } : {})
  })

/** The bytes a stored chunk stands for. Self-contained, like `encodeKit`. */
export const decodeKit = (zlib: typeof import("node:zlib")) => (codec: number, payload: Uint8Array, raw: number, dictionary?: Uint8Array): Uint8Array => {
  if (codec === 0) return payload
  const out = zlib.zstdDecompressSync(payload, { chunkSize: Math.max(64, raw), maxOutputLength: Math.max(raw, 1), ...(dictionary ? { dictionary } : {}) })
  if (out.length !== raw) throw new Error(`got ${out.length} bytes, expected ${raw}`)
  return out
}

/** A view that owns its whole ArrayBuffer (one that can be moved to another thread without taking neighbours along). */
const owned = (bytes: Uint8Array): Uint8Array =>
  bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length && !(bytes.buffer instanceof SharedArrayBuffer) ? bytes : new Uint8Array(bytes)

const workerSource = (): string => {
  const deps = resemblanceDeps()
  return `
const crypto = process.getBuiltinModule("node:crypto")
const zlib = process.getBuiltinModule("node:zlib")
const { parentPort } = process.getBuiltinModule("node:worker_threads")
const owned = ${owned.toString()}
const resemblance = (${resemblanceKit.toString()})({
  wasm: new Uint8Array(${JSON.stringify([...deps.wasm])}),
  gear: ${JSON.stringify(Array.from(deps.gear))}, a: ${JSON.stringify(Array.from(deps.a))}, b: ${JSON.stringify(Array.from(deps.b))},
  layout: ${JSON.stringify(deps.layout)}, createHash: crypto.createHash
})
const zstd = (${zstdSync.toString()})(zlib)
const encode = (${encodeKit.toString()})({ zstd, looksIncompressible: ${looksIncompressible.toString()}, usableAsBase: ${usableAsBase.toString()} })
const decode = (${decodeKit.toString()})(zlib)
parentPort.on("message", (m) => {
  const transfer = []
  const give = (bytes) => { const b = owned(bytes); transfer.push(b.buffer); return b }
  try {
    const chunk = (i) => m.buffer.subarray(m.offsets[i], m.offsets[i] + m.lengths[i])
    if (m.op === "hash") {
      const ids = new Uint8Array(32 * m.offsets.length)
      for (let i = 0; i < m.offsets.length; i++) ids.set(crypto.createHash("sha256").update(chunk(i)).digest(), 32 * i)
      transfer.push(ids.buffer, m.buffer.buffer)
      parentPort.postMessage({ id: m.id, ids, buffer: m.buffer }, transfer)
    } else if (m.op === "features") {
      const sfs = m.items.map((i) => resemblance.superFeatures(chunk(i)))
      transfer.push(m.buffer.buffer)
      parentPort.postMessage({ id: m.id, sfs, buffer: m.buffer }, transfer)
    } else if (m.op === "encode") {
      // raw chunks stay where they are in the batch; frames are gathered in one buffer
      const done = m.items.map((i, k) => encode(chunk(i), m.dictionaries[k] ?? undefined, m.options))
      let size = 0
      for (const e of done) if (e.codec !== 0) size += e.payload.length
      const frames = new Uint8Array(size)
      let at = 0
      const out = done.map((e, k) => {
        if (e.codec === 0) return { codec: 0, poor: e.poor, inFrames: false, offset: m.offsets[m.items[k]], length: e.payload.length }
        frames.set(e.payload, at)
        at += e.payload.length
        return { codec: e.codec, poor: e.poor, inFrames: true, offset: at - e.payload.length, length: e.payload.length }
      })
      transfer.push(frames.buffer, m.buffer.buffer)
      parentPort.postMessage({ id: m.id, out, frames, buffer: m.buffer }, transfer)
    } else if (m.op === "decode") {
      // a run of stored chunks in one buffer, decoded into one buffer (the caller's, when it gives one big enough)
      let size = 0
      for (const r of m.raws) size += r
      const out = m.into && m.into.length >= size ? m.into : new Uint8Array(size)
      let at = 0
      for (let i = 0; i < m.codecs.length; i++) {
        const p = m.run.subarray(m.offsets[i], m.offsets[i] + m.stored[i])
        out.set(decode(m.codecs[i], p, m.raws[i], m.dictionaries[i] ?? undefined), at)
        at += m.raws[i]
      }
      transfer.push(out.buffer, m.run.buffer)
      parentPort.postMessage({ id: m.id, bytes: out.subarray(0, size), run: m.run }, transfer)
    }
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) })
  }
})
`
}

type Reply = {
  readonly id: number
  readonly error?: string
  readonly ids?: Uint8Array
  readonly buffer?: Uint8Array
  readonly sfs?: Array<Array<number>>
  readonly out?: Array<{ readonly codec: Codec; readonly poor: boolean; readonly inFrames: boolean; readonly offset: number; readonly length: number }>
  readonly frames?: Uint8Array
  readonly bytes?: Uint8Array
  readonly run?: Uint8Array
}

let shared: ThreadPool<Reply> | undefined

/** The process's pool: one worker per core (the thread that cuts runs beside them; each job is a batch). */
const pool = (): ThreadPool<Reply> => {
  if (!shared) {
    shared = new ThreadPool<Reply>({ size: Math.max(1, Math.min(4, availableParallelism())), source: workerSource(), failed: (reason) => ({ id: -1, error: `a chunk worker died: ${reason}` }) })
    shared.start()
  }
  return shared
}

/**
 * Chunks cut from a NAR, one after the other in one buffer (moved to a worker and back with each job,
 * so `buffer` is replaced by the one each job gives back). The buffer is the whole allocation (so it
 * moves without a copy): its chunks end before `size`.
 */
export interface Batch {
  buffer: Uint8Array
  readonly size: number
  readonly offsets: ReadonlyArray<number>
  readonly lengths: ReadonlyArray<number>
}

/** Batch buffers to reuse (a fresh one costs the kernel's zeroing and more on its first move to a worker). */
const freeBatchBuffers: Array<Uint8Array> = []

export const takeBatchBuffer = (capacity: number): Uint8Array => {
  while (freeBatchBuffers.length > 0) {
    const b = freeBatchBuffers.pop()!
    if (b.length === capacity) return b
  }
  return new Uint8Array(capacity)
}

export const giveBatchBuffer = (buffer: Uint8Array) => {
  if (freeBatchBuffers.length < 16 && buffer.byteOffset === 0 && buffer.length === buffer.buffer.byteLength) freeBatchBuffers.push(buffer)
}

export interface ChunkWorkers {
  /** The chunks' ids (sha256), 32 bytes each. */
  readonly hash: (batch: Batch) => Effect.Effect<Uint8Array, StoreIoError>
  /** Super-features of the chunks `items` (indexes in the batch). */
  readonly features: (batch: Batch, items: ReadonlyArray<number>) => Effect.Effect<Array<Array<number>>, StoreIoError>
  /** The chunks `items` encoded (each with its base's bytes or undefined); a raw payload is a view of the batch's buffer. */
  readonly encode: (batch: Batch, items: ReadonlyArray<number>, dictionaries: ReadonlyArray<Uint8Array | undefined>, options: EncodeOptions) => Effect.Effect<Array<Encoded>, StoreIoError>
  /**
   * The raw bytes of a run of stored chunks, one after the other in one buffer (`into` when it is
   * big enough: a buffer to reuse). `run` holds their payloads (moved to the worker and given back
   * as `run`); a delta chunk comes with its base's bytes.
   */
  readonly decode: (run: Uint8Array, chunks: ReadonlyArray<{ readonly offset: number; readonly stored: number; readonly raw: number; readonly codec: Codec; readonly dictionary?: Uint8Array | undefined }>, into?: Uint8Array) =>
    Effect.Effect<{ readonly bytes: Uint8Array; readonly run: Uint8Array }, StoreIoError>
}

/** The chunk workers, failures told as StoreIoError of `uri`. */
export const chunkWorkers = (uri: string): ChunkWorkers => {
  const run = <A>(operation: string, message: object, transfer: ReadonlyArray<ArrayBuffer>, take: (reply: Reply) => A) =>
    Effect.flatMap(Effect.promise(() => {
      const threads = pool()
      const slot: ThreadSlot | undefined = threads.pick()
      return slot ? threads.send(slot, message, transfer) : Promise.resolve<Reply>({ id: -1, error: "no chunk worker is alive" })
    }), (reply) => reply.error !== undefined
      ? Effect.fail(new StoreIoError({ store: uri, operation, reason: reply.error }))
      : Effect.succeed(take(reply)))
  return {
    hash: (batch) => Effect.suspend(() => {
      const buffer = owned(batch.buffer)
      return run("hash chunks", { op: "hash", buffer, offsets: batch.offsets, lengths: batch.lengths }, [buffer.buffer as ArrayBuffer], (r) => { batch.buffer = r.buffer!; return r.ids! })
    }),
    features: (batch, items) => Effect.suspend(() => {
      const buffer = owned(batch.buffer)
      return run("compute super-features", { op: "features", buffer, offsets: batch.offsets, lengths: batch.lengths, items }, [buffer.buffer as ArrayBuffer], (r) => { batch.buffer = r.buffer!; return r.sfs! })
    }),
    encode: (batch, items, dictionaries, options) => Effect.suspend(() => {
      const buffer = owned(batch.buffer)
      return run("compress chunks", { op: "encode", buffer, offsets: batch.offsets, lengths: batch.lengths, items, dictionaries, options }, [buffer.buffer as ArrayBuffer], (r) => {
        batch.buffer = r.buffer!
        return r.out!.map((e): Encoded => ({ codec: e.codec, poor: e.poor, payload: (e.inFrames ? r.frames! : r.buffer!).subarray(e.offset, e.offset + e.length) }))
      })
    }),
    decode: (runBytes, chunks, into) => Effect.suspend(() => {
      const whole = owned(runBytes)
      const target = into ? owned(into) : undefined
      return run("decompress chunks", {
        op: "decode", run: whole, into: target,
        offsets: chunks.map((c) => c.offset), stored: chunks.map((c) => c.stored), raws: chunks.map((c) => c.raw),
        codecs: chunks.map((c) => c.codec), dictionaries: chunks.map((c) => c.dictionary)
      }, target && target.buffer !== whole.buffer ? [whole.buffer as ArrayBuffer, target.buffer as ArrayBuffer] : [whole.buffer as ArrayBuffer], (r) => ({ bytes: r.bytes!, run: r.run! }))
    })
  }
}
