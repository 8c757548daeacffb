/**
 * Worker threads for the chunk store's per-chunk work, so that an ingest uses every core: the
 * thread that reads, checks, normalises and cuts the NAR hands batches of chunks to these and goes
 * on cutting. A batch lives in a slot, a pair of SharedArrayBuffers the workers were given once
 * (nothing is copied, moved or allocated per job). Jobs, each over a batch:
 *
 * - `hash`: each chunk's id (sha256), and whether it looks incompressible (`looksIncompressible`:
 *   such a chunk without a base is stored as it is, and needs no encoding job);
 * - `features`: each chunk's super-features (resemblance.ts, the same code from its source text);
 * - `encode`: each chunk's stored form — zstd at the store's level, or a zstd delta against a base
 *   given as a dictionary, or the bytes as they are when zstd cannot shrink them (see `encodeKit`),
 *   frames written to the slot's output.
 *
 * Serving (feed.ts): `serve` turns a run of stored chunks read into a slot back into the NAR's bytes
 * or into zstd frames, into the slot's output.
 *
 * One pool per process (the mechanism is src/nar/fs/thread-pool.ts: workers from source text, so
 * this works the same from the sources, tests and the bundle); idle workers do not keep the process
 * alive. A worker that dies fails the jobs it had (the ingest or read fails, and can be retried).
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { availableParallelism } from "node:os"
import { looksIncompressible } from "../../core/chunks/fastcdc.ts"
import type { Codec } from "../../core/chunks/formats.ts"
import { resemblanceDeps, resemblanceKit, usableAsBase } from "../../core/chunks/resemblance.ts"
import { sha256 } from "../../core/chunks/sha256.ts"
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

/**
 * Writes the bytes as one zstd frame of raw (stored) blocks into `out` at `at` (what a zstd reader
 * decompresses back to the bytes, made without compressing: formats.ts's rawZstdFrame, in place);
 * returns where it ends. Self-contained, like `encodeKit`.
 */
export const rawFrameInto = (out: Uint8Array, at: number, bytes: Uint8Array): number => {
  const BLOCK = 128 * 1024
  const blocks = Math.max(1, Math.ceil(bytes.length / BLOCK))
  out[at] = 0x28; out[at + 1] = 0xb5; out[at + 2] = 0x2f; out[at + 3] = 0xfd // magic
  out[at + 4] = 0xa0 // single segment, 4-byte frame content size, no checksum, no dictionary
  out[at + 5] = bytes.length & 0xff; out[at + 6] = (bytes.length >>> 8) & 0xff; out[at + 7] = (bytes.length >>> 16) & 0xff; out[at + 8] = (bytes.length >>> 24) & 0xff
  let to = at + 9
  for (let b = 0; b < blocks; b++) {
    const size = Math.min(BLOCK, bytes.length - b * BLOCK)
    const header = (size << 3) | (b === blocks - 1 ? 1 : 0) // raw block type 0
    out[to] = header & 0xff
    out[to + 1] = (header >>> 8) & 0xff
    out[to + 2] = (header >>> 16) & 0xff
    out.set(bytes.subarray(b * BLOCK, b * BLOCK + size), to + 3)
    to += 3 + size
  }
  return to
}

const workerSource = (): string => {
  const deps = resemblanceDeps()
  return `
// node:crypto only when asked to hash chunks: a worker of a process started from a startup
// snapshot (the CLI) aborts when it loads node:crypto, so such processes hash on their main thread
let crypto
const sha256Chunk = (bytes) => (crypto ??= process.getBuiltinModule("node:crypto")).createHash("sha256").update(bytes).digest()
const zlib = process.getBuiltinModule("node:zlib")
const { parentPort } = process.getBuiltinModule("node:worker_threads")
const resemblance = (${resemblanceKit.toString()})({
  wasm: new Uint8Array(${JSON.stringify([...deps.wasm])}),
  gear: ${JSON.stringify(Array.from(deps.gear))}, a: ${JSON.stringify(Array.from(deps.a))}, b: ${JSON.stringify(Array.from(deps.b))},
  layout: ${JSON.stringify(deps.layout)}, sha256: ${sha256.toString()}
})
const zstd = (${zstdSync.toString()})(zlib)
const looksIncompressible = ${looksIncompressible.toString()}
const usableAsBase = ${usableAsBase.toString()}
const encode = (${encodeKit.toString()})({ zstd, looksIncompressible, usableAsBase })
const decode = (${decodeKit.toString()})(zlib)
const rawFrameInto = ${rawFrameInto.toString()}
/** Batch buffers shared with the main thread, by slot number (sent once, with the first job on each). */
const slots = new Map()
/** The NARs being hashed here, by stream number: their batches come to this worker, in order. */
const nars = new Map()
parentPort.on("message", (m) => {
  try {
    if (m.shared) slots.set(m.slot, { input: new Uint8Array(m.shared[0]), output: new Uint8Array(m.shared[1]) })
    if (m.op === "forget") { slots.delete(m.slot); return }
    if (m.op === "narDigest") {
      const h = nars.get(m.stream)
      nars.delete(m.stream)
      const digest = m.drop || !h ? new Uint8Array(0) : new Uint8Array(h.digest())
      parentPort.postMessage({ id: m.id, ids: digest }, [digest.buffer])
      return
    }
    const slot = slots.get(m.slot)
    const chunk = (i) => slot.input.subarray(m.offsets[i], m.offsets[i] + m.lengths[i])
    if (m.op === "hash") {
      if (m.nar) {
        // the NAR's own bytes: the batch's (normalised) bytes with the hashes put back, in order
        let h = nars.get(m.nar.stream)
        if (!h) nars.set(m.nar.stream, h = (crypto ??= process.getBuiltinModule("node:crypto")).createHash("sha256"))
        let at = 0
        for (const p of m.nar.patches) {
          if (p.at > at) h.update(slot.input.subarray(at, p.at))
          h.update(p.bytes)
          at = p.at + p.bytes.length
        }
        if (m.nar.size > at) h.update(slot.input.subarray(at, m.nar.size))
      }
      const n = m.offsets.length
      const ids = new Uint8Array(m.ids ? 32 * n + n : n)
      const at = m.ids ? 32 * n : 0
      // with features (1: of the chunks that do not look incompressible, 2: of all), the super-features
      // too, in this job (for batches likely to be new: see ChunkWorkers.hash)
      const sfs = m.features ? [] : undefined
      for (let i = 0; i < n; i++) {
        if (m.ids) ids.set(sha256Chunk(chunk(i)), 32 * i)
        const flat = looksIncompressible(chunk(i))
        ids[at + i] = flat ? 1 : 0
        if (sfs) sfs.push((m.features === 2 || !flat) && usableAsBase(chunk(i)) ? resemblance.superFeatures(chunk(i)) : null)
      }
      parentPort.postMessage({ id: m.id, ids, sfs }, [ids.buffer])
    } else if (m.op === "features") {
      parentPort.postMessage({ id: m.id, sfs: m.items.map((i) => resemblance.superFeatures(chunk(i))) })
    } else if (m.op === "encode") {
      // raw chunks stay where they are in the batch; frames go one after the other into the slot's output
      // (every frame kept is smaller than its chunk, so they fit)
      let at = 0
      const out = m.items.map((i, k) => {
        const e = encode(chunk(i), m.dictionaries[k] ?? undefined, m.options)
        if (e.codec === 0) return { codec: 0, poor: e.poor, inOutput: false, offset: m.offsets[i], length: e.payload.length }
        slot.output.set(e.payload, at)
        at += e.payload.length
        return { codec: e.codec, poor: e.poor, inOutput: true, offset: at - e.payload.length, length: e.payload.length }
      })
      parentPort.postMessage({ id: m.id, out })
    } else if (m.op === "serve") {
      const { input, output } = slot
      let at = 0
      let rawAt = 0
      let p = 0
      for (const c of m.chunks) {
        const payload = input.subarray(c.offset, c.offset + c.stored)
        if (m.mode === "plain") {
          if (c.codec === 0) output.set(payload, at)
          else output.set(decode(c.codec, payload, c.raw, c.dictionary ?? undefined), at)
          at += c.raw
          continue
        }
        // the zstd stream: this chunk's hashes (a hash may lie across two chunks: each gets its part)
        while (p < m.patches.length && m.patches[p].at + m.patches[p].bytes.length <= rawAt) p++
        const mine = []
        for (let q = p; q < m.patches.length && m.patches[q].at < rawAt + c.raw; q++) mine.push(m.patches[q])
        if (c.codec === 2 || mine.length > 0) {
          const raw = decode(c.codec, payload, c.raw, c.dictionary ?? undefined)
          for (const x of mine) {
            const a = Math.max(x.at, rawAt), b = Math.min(x.at + x.bytes.length, rawAt + c.raw)
            raw.set(x.bytes.subarray(a - x.at, b - x.at), a - rawAt)
          }
          const frame = zstd(raw, 1)
          output.set(frame, at)
          at += frame.length
        } else if (c.codec === 1) {
          output.set(payload, at)
          at += payload.length
        } else at = rawFrameInto(output, at, payload)
        rawAt += c.raw
      }
      if (m.mode === "plain") for (const x of m.patches) output.set(x.bytes, x.at)
      parentPort.postMessage({ id: m.id, size: at })
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
  readonly sfs?: Array<Array<number> | null>
  readonly out?: Array<{ readonly codec: Codec; readonly poor: boolean; readonly inOutput: boolean; readonly offset: number; readonly length: number }>
  readonly size?: number
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
 * A batch buffer shared with the workers (SharedArrayBuffer: nothing is copied or moved per job, and
 * nothing is allocated per batch): `input` holds the batch's chunks, `output` the frames `encode`
 * makes. Taken from the ring for one batch at a time and given back once the batch is done with.
 */
export interface BatchSlot {
  readonly id: number
  readonly input: Uint8Array
  readonly output: Uint8Array
  /** The workers that have it already. */
  readonly known: WeakSet<object>
  /** Jobs on it not yet answered (a slot given back while a job of a failed batch still runs is reused only after). */
  jobs: number
  returning: boolean
}

const RING = 12
let slotIds = 0
const rings = new Map<number, { free: Array<BatchSlot>; made: number; waiting: Array<(slot: BatchSlot) => void> }>()
const ringOf = (capacity: number) => {
  let ring = rings.get(capacity)
  if (!ring) { ring = { free: [], made: 0, waiting: [] }; rings.set(capacity, ring) }
  return ring
}

/** A slot of `capacity` bytes (waits while all of the ring's are in use). */
export const takeSlot = (capacity: number): Effect.Effect<BatchSlot> => Effect.callback<BatchSlot>((resume) => {
  const ring = ringOf(capacity)
  const free = ring.free.pop()
  if (free) return resume(Effect.succeed(free))
  if (ring.made < RING) {
    ring.made++
    return resume(Effect.succeed({ id: slotIds++, input: new Uint8Array(new SharedArrayBuffer(capacity)), output: new Uint8Array(new SharedArrayBuffer(capacity)), known: new WeakSet(), jobs: 0, returning: false }))
  }
  const waiter = (slot: BatchSlot) => resume(Effect.succeed(slot))
  ring.waiting.push(waiter)
  return Effect.sync(() => { const at = ring.waiting.indexOf(waiter); if (at >= 0) ring.waiting.splice(at, 1) })
})

const release = (slot: BatchSlot) => {
  slot.returning = false
  const ring = ringOf(slot.input.length)
  const waiter = ring.waiting.shift()
  if (waiter) waiter(slot)
  else if (slot.input.length <= 8 << 20) ring.free.push(slot)
  else ring.made-- // an outsized one (a chunk bigger than a run): not kept
}

/** Counts `job` (a worker's or a read's, on the slot's buffers) as running on the slot until it settles. */
export const slotJob = <A>(slot: BatchSlot, job: Promise<A>): Promise<A> => {
  slot.jobs++
  return job.finally(() => { if (--slot.jobs === 0 && slot.returning) release(slot) })
}

/** Gives a slot back (once its jobs are answered). */
export const giveSlot = (slot: BatchSlot) => {
  if (slot.jobs === 0) release(slot)
  else slot.returning = true
}

/** Chunks cut from a NAR, one after the other in a slot's input. */
export interface Batch {
  readonly slot: BatchSlot
  readonly size: number
  readonly offsets: ReadonlyArray<number>
  readonly lengths: ReadonlyArray<number>
}

/**
 * A NAR hashed on a chunk worker from its batches (the normalised bytes with the hashes put back):
 * `patches` are the hash bytes to put back at offsets of the batch (Denormaliser.patches).
 */
export interface NarPart {
  readonly stream: number
  readonly patches: ReadonlyArray<{ readonly at: number; readonly bytes: Uint8Array }>
}

export interface ChunkWorkers {
  /**
   * Whether the workers can hash (not under a startup snapshot): then a NAR's sha256 can be taken
   * there, from its batches (`hash` with a NarPart, then `narDigest`).
   */
  readonly hashesNar: boolean
  /** A number for a NAR to hash on the workers. */
  readonly narStream: () => number
  /**
   * The chunks' ids (sha256), 32 bytes each, and for each whether it looks incompressible
   * (`looksIncompressible`). The job is sent at once (call it in the batches' order); with `nar`,
   * the batch is also hashed into that NAR's sha256, on the one worker that hashes NARs. With
   * `features` (1: of the chunks that do not look incompressible, 2: of all), the same job also
   * computes the super-features of those chunks that can be bases (`sfs[i]`, null for the others):
   * for batches of new chunks, a round trip less than a `features` job after the lookup.
   */
  readonly hash: (batch: Batch, nar?: NarPart, features?: 0 | 1 | 2) => Effect.Effect<{ readonly ids: Uint8Array; readonly flat: Uint8Array; readonly sfs?: ReadonlyArray<ReadonlyArray<number> | null> | undefined }, StoreIoError>
  /** The sha256 of the NAR hashed so far (its batches sent before), or nothing with `drop` (the NAR is given up). */
  readonly narDigest: (stream: number, drop: boolean) => Effect.Effect<Uint8Array, StoreIoError>
  /** Super-features of the chunks `items` (indexes in the batch). */
  readonly features: (batch: Batch, items: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<ReadonlyArray<number>>, StoreIoError>
  /** The chunks `items` encoded (each with its base's bytes or undefined); payloads are views of the batch's slot (valid until it is given back). */
  readonly encode: (batch: Batch, items: ReadonlyArray<number>, dictionaries: ReadonlyArray<Uint8Array | undefined>, options: EncodeOptions) => Effect.Effect<Array<Encoded>, StoreIoError>
  /**
   * A run of stored chunks in the slot's input (their payloads at `offset`), given out into its
   * output as the NAR's bytes (`plain`: the hashes put back) or as zstd frames; the bytes written.
   */
  readonly serve: (slot: BatchSlot, job: {
    readonly mode: "plain" | "zstd"
    readonly chunks: ReadonlyArray<{ readonly offset: number; readonly stored: number; readonly raw: number; readonly codec: Codec; readonly dictionary?: Uint8Array | undefined }>
    readonly patches: ReadonlyArray<{ readonly at: number; readonly bytes: Uint8Array }>
  }) => Effect.Effect<number, StoreIoError>
}

/**
 * Whether the workers may hash: not in a process started from a startup snapshot (the CLI's), where
 * a worker that loads node:crypto aborts the process (Node 24); there the chunks are hashed here.
 */
const workersHash = !process.execArgv.some((a) => a === "--snapshot-blob" || a.startsWith("--snapshot-blob="))

/** NARs hashed on the workers so far (their numbers: one pool per process, whatever the store). */
let narStreams = 0

/** The chunk workers, failures told as StoreIoError of `uri`. */
export const chunkWorkers = (uri: string): ChunkWorkers => {
  /** Sends the message now; `pinned`: to the worker that hashes NARs (the first), which gets a NAR's messages in order. */
  const post = (message: object, transfer: ReadonlyArray<ArrayBuffer>, batch?: BatchSlot, pinned = false): Promise<Reply> => {
    const threads = pool()
    const worker: ThreadSlot | undefined = pinned ? threads.first() : threads.pick()
    if (!worker) return Promise.resolve<Reply>({ id: -1, error: "no chunk worker is alive" })
    if (!batch) return threads.send(worker, message, transfer)
    const first = !batch.known.has(worker)
    batch.known.add(worker)
    return slotJob(batch, threads.send(worker, { ...message, slot: batch.id, ...(first ? { shared: [batch.input.buffer, batch.output.buffer] } : {}) }, transfer))
  }
  const answer = <A>(operation: string, reply: Reply, take: (reply: Reply) => A) => reply.error !== undefined
    ? Effect.fail(new StoreIoError({ store: uri, operation, reason: reply.error }))
    : Effect.succeed(take(reply))
  const run = <A>(operation: string, message: object, transfer: ReadonlyArray<ArrayBuffer>, take: (reply: Reply) => A, batch?: BatchSlot, pinned = false) =>
    Effect.flatMap(Effect.promise(() => post(message, transfer, batch, pinned)), (reply) => answer(operation, reply, take))
  return {
    hashesNar: workersHash,
    narStream: () => narStreams++,
    narDigest: (stream, drop) => run("hash the NAR", { op: "narDigest", stream, drop }, [], (r) => r.ids!, undefined, true),
    hash: (batch, nar, features = 0) => {
      const n = batch.offsets.length
      // with the NAR's part, to the one worker that hashes NARs: one message per batch (a separate
      // one, to any worker, for the chunks took more CPU in all, for the extra thread wake-ups)
      const hashed = post({ op: "hash", ids: workersHash, features, offsets: batch.offsets, lengths: batch.lengths, ...(nar ? { nar: { ...nar, size: batch.size } } : {}) }, [], batch.slot, nar !== undefined)
      const job = Effect.flatMap(Effect.promise(() => hashed), (reply) => answer("hash chunks", reply, (r) => ({ both: r.ids!, sfs: r.sfs ?? undefined })))
      if (workersHash) return Effect.map(job, ({ both, sfs }) => ({ ids: both.subarray(0, 32 * n), flat: both.subarray(32 * n), sfs }))
      // hashed here while a worker looks at the chunks (the job is sent first)
      const here = Effect.sync(() => {
        const ids = new Uint8Array(32 * n)
        batch.offsets.forEach((at, i) => ids.set(createHash("sha256").update(batch.slot.input.subarray(at, at + batch.lengths[i]!)).digest(), 32 * i))
        return ids
      })
      return Effect.map(Effect.all([job, here], { concurrency: 2 }), ([{ both, sfs }, ids]) => ({ ids, flat: both, sfs }))
    },
    features: (batch, items) => run("compute super-features", { op: "features", offsets: batch.offsets, lengths: batch.lengths, items }, [], (r) => r.sfs!.map((f) => f ?? []), batch.slot),
    encode: (batch, items, dictionaries, options) =>
      run("compress chunks", { op: "encode", offsets: batch.offsets, lengths: batch.lengths, items, dictionaries, options }, [], (r) =>
        r.out!.map((e): Encoded => ({ codec: e.codec, poor: e.poor, payload: (e.inOutput ? batch.slot.output : batch.slot.input).subarray(e.offset, e.offset + e.length) })), batch.slot),
    serve: (slot, job) => run("decompress chunks", { op: "serve", ...job }, [], (r) => r.size!, slot)
  }
}
