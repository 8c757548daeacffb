/**
 * Content-defined chunking: FastCDC (Xia et al., 2016) with a Gear rolling hash and normalised
 * chunking (level 2), written here in plain TypeScript. Cut points depend only on the bytes, so an
 * insertion or change moves at most the chunks around it; the same bytes cut the same way wherever
 * they sit in a stream.
 *
 * The hash is 32 bits (`h = (h << 1) + GEAR[byte]`), so each bit depends on the last 32 bytes at
 * most; the masks test its top bits, which depend on the most bytes. Hashing starts `min` bytes
 * into a chunk (FastCDC's cut-point skipping); before `avg` a harder mask (2 more bits) is used,
 * after it an easier one (2 fewer), which narrows the chunk-size distribution around `avg`.
 *
 * The gear table is part of the store format: changing it changes every cut point (the data still
 * reads back, but stops deduplicating against what is stored).
 */
import { createHash } from "node:crypto"
import { Result, Schema } from "effect"
import { name, section, uleb, vector } from "./wasm-module.ts"

export class InvalidChunkParams extends Schema.TaggedError<InvalidChunkParams>()("InvalidChunkParams", {
  reason: Schema.String
}) {
  override get message() { return `invalid chunking parameters: ${this.reason}` }
}

export interface ChunkParams {
  readonly min: number
  readonly avg: number
  readonly max: number
}

/** 256 fixed pseudo-random 32-bit values: sha256("b3-fastcdc-gear-" + i), first 4 bytes. */
const GEAR = (() => {
  const table = new Int32Array(256)
  for (let i = 0; i < 256; i++) table[i] = createHash("sha256").update(`b3-fastcdc-gear-${i}`).digest().readInt32LE(0)
  return table
})()

const topMask = (bits: number) => (bits >= 32 ? -1 : ((1 << bits) - 1) << (32 - bits)) | 0

export interface Cutter {
  readonly params: ChunkParams
  /** The cutter's own buffer: the bytes to cut are copied here (its length is a multiple of `max`). */
  readonly window: Uint8Array
  /**
   * The length of the chunk starting at `window[start]`, given the bytes up to `window[end]`. Call
   * it with at least `max` bytes available, or with whatever is left at the end of the stream
   * (`end - start` may then be anything from 1 up).
   */
  readonly cut: (start: number, end: number) => number
}

interface Masks { readonly maskS: number; readonly maskL: number }

const checkParams = (params: ChunkParams): Result.Result<Masks, InvalidChunkParams> => {
  const { min, avg, max } = params
  const bad = (reason: string) => Result.fail(new InvalidChunkParams({ reason }))
  if (![min, avg, max].every((n) => Number.isInteger(n) && n > 0)) return bad("sizes must be positive integers")
  if (!(min <= avg && avg <= max)) return bad(`need min <= avg <= max, got ${min}/${avg}/${max}`)
  if (max > 1 << 26) return bad("max must be at most 64 MiB")
  const bits = Math.round(Math.log2(avg))
  if (bits < 6 || bits > 28) return bad("avg must be between 64 bytes and 256 MiB")
  return Result.succeed({ maskS: topMask(bits + 2), maskL: topMask(bits - 2) })
}

/** Window size: room for a few maximal chunks, so the buffer is compacted rarely. */
const windowSize = (max: number) => Math.max(4 * max, 1 << 20)

/** The cutter in plain TypeScript (the reference the WebAssembly one is tested against). */
export const makeJsCutter = (params: ChunkParams): Result.Result<Cutter, InvalidChunkParams> =>
  Result.map(checkParams(params), ({ maskS, maskL }) => {
    const { min, avg, max } = params
    const window = new Uint8Array(windowSize(max))
    const cut = (start: number, end: number): number => {
      let n = end - start
      if (n <= min) return n
      if (n > max) n = max
      const normal = start + Math.min(avg, n)
      const stop = start + n
      const gear = GEAR
      const data = window
      let h = 0
      let i = start + min
      for (; i < normal; i++) {
        h = ((h << 1) + gear[data[i]!]!) | 0
        if ((h & maskS) === 0) return i - start + 1
      }
      for (; i < stop; i++) {
        h = ((h << 1) + gear[data[i]!]!) | 0
        if ((h & maskL) === 0) return i - start + 1
      }
      return n
    }
    return { params, window, cut }
  })

// ---- The same loop in WebAssembly (2-4x faster than the TypeScript one here) ----------------


/** Where the window starts in the module's memory (the gear table takes the first 1 KiB). */
const DATA = 1024

/**
 * A module exporting `mem` and `cut(i, normal, stop, maskS, maskL) -> end`: the Gear loop of
 * `makeJsCutter` over `mem[DATA + i ..]`, with the table at `mem[0 .. 1024]`. Assembled here from
 * its opcodes (no toolchain, nothing downloaded).
 */
const wasmBytes = (): Uint8Array<ArrayBuffer> => {
  const I32 = 0x7f
  const get = (i: number) => [0x20, i]
  const set = (i: number) => [0x21, i]
  // locals: 0 i, 1 normal, 2 stop, 3 maskS, 4 maskL, 5 h
  /** Byte `data[i + k]`: h = (h << 1) + gear[byte]; if ((h & mask) == 0) return i + k + 1. */
  const step = (mask: number, k: number) => [
    ...get(5), 0x41, 1, 0x74, // h << 1
    ...get(0), 0x2d, 0x00, ...uleb(DATA + k), 0x41, 2, 0x74, 0x28, 0x02, 0x00, // gear[data[i + k]]
    0x6a, ...set(5), // h = ...
    ...get(5), ...get(mask), 0x71, 0x45, 0x04, 0x40, ...get(0), 0x41, k + 1, 0x6a, 0x0f, 0x0b // if ((h & mask) == 0) return i + k + 1
  ]
  const UNROLL = 8
  // UNROLL bytes at a time while that many are left before `limit`, then one at a time
  const loop = (limit: number, mask: number) => [
    0x02, 0x40, 0x03, 0x40, ...get(0), 0x41, UNROLL, 0x6a, ...get(limit), 0x4b, 0x0d, 1,
    ...Array.from({ length: UNROLL }, (_, k) => step(mask, k)).flat(),
    ...get(0), 0x41, UNROLL, 0x6a, ...set(0), 0x0c, 0, 0x0b, 0x0b,
    0x02, 0x40, 0x03, 0x40, ...get(0), ...get(limit), 0x4f, 0x0d, 1, ...step(mask, 0), ...get(0), 0x41, 1, 0x6a, ...set(0), 0x0c, 0, 0x0b, 0x0b
  ]
  const code = [...vector([[1, I32]]), ...loop(1, 3), ...loop(2, 4), ...get(2), 0x0b]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, vector([[0x60, ...vector([[I32], [I32], [I32], [I32], [I32]]), ...vector([[I32]])]])),
    ...section(3, vector([[0]])),
    ...section(5, vector([[0x00, 1]])),
    ...section(7, vector([[...name("cut"), 0x00, 0], [...name("mem"), 0x02, 0]])),
    ...section(10, vector([[...uleb(code.length), ...code]]))
  ])
}

/** The few WebAssembly APIs used (the project's type libraries do not declare them). */
interface WasmMemory { readonly buffer: ArrayBuffer; grow(pages: number): number }
interface WasmApi {
  readonly Module: new (bytes: Uint8Array<ArrayBuffer>) => object
  readonly Instance: new (module: object) => { readonly exports: Record<string, unknown> }
}
const wasm = (): WasmApi => (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

let compiled: object | undefined

/** The cutter in WebAssembly: its window lives in the module's memory. */
export const makeWasmCutter = (params: ChunkParams): Result.Result<Cutter, InvalidChunkParams> =>
  Result.map(checkParams(params), ({ maskS, maskL }) => {
    const { min, avg, max } = params
    compiled ??= new (wasm().Module)(wasmBytes())
    const instance = new (wasm().Instance)(compiled)
    const memory = instance.exports["mem"] as WasmMemory
    const run = instance.exports["cut"] as (i: number, normal: number, stop: number, maskS: number, maskL: number) => number
    const size = windowSize(max)
    memory.grow(Math.ceil((DATA + size) / 65536))
    new Int32Array(memory.buffer, 0, 256).set(GEAR)
    const window = new Uint8Array(memory.buffer, DATA, size)
    const cut = (start: number, end: number): number => {
      let n = end - start
      if (n <= min) return n
      if (n > max) n = max
      return run(start + min, start + Math.min(avg, n), start + n, maskS, maskL) - start
    }
    return { params, window, cut }
  })

/** The fast cutter. */
export const makeCutter = makeWasmCutter

/**
 * A streaming chunker: feed it bytes in pieces of any size; it calls `emit` with each chunk (a
 * fresh copy the caller may keep, or with `views`, a view of the cutter's window valid only until
 * `emit` returns) as soon as the chunk is known. Holds at most the cutter's window.
 */
export class Chunker {
  readonly #cutter: Cutter
  readonly #views: boolean
  #start = 0
  #filled = 0

  constructor(cutter: Cutter, options: { readonly views?: boolean } = {}) {
    this.#cutter = cutter
    this.#views = options.views ?? false
  }

  push(data: Uint8Array, emit: (chunk: Uint8Array) => void): void {
    const { window, params: { max } } = this.#cutter
    let at = 0
    while (at < data.length) {
      if (this.#filled === window.length) {
        window.copyWithin(0, this.#start, this.#filled)
        this.#filled -= this.#start
        this.#start = 0
      }
      const take = Math.min(window.length - this.#filled, data.length - at)
      window.set(data.subarray(at, at + take), this.#filled)
      this.#filled += take
      at += take
      while (this.#filled - this.#start >= max) this.#emitOne(emit)
    }
  }

  /** Emits what is left (the stream's last chunks) and starts over. */
  end(emit: (chunk: Uint8Array) => void): void {
    while (this.#start < this.#filled) this.#emitOne(emit)
    this.#start = this.#filled = 0
  }

  #emitOne(emit: (chunk: Uint8Array) => void): void {
    const n = this.#cutter.cut(this.#start, this.#filled)
    emit(this.#views ? this.#cutter.window.subarray(this.#start, this.#start + n) : this.#cutter.window.slice(this.#start, this.#start + n))
    this.#start += n
  }
}

/** Cuts a whole buffer with a fresh chunker; the chunk lengths (for tests and measurements). */
export const chunkLengths = (cutter: Cutter, data: Uint8Array): Array<number> => {
  const out: Array<number> = []
  const chunker = new Chunker(cutter)
  chunker.push(data, (c) => out.push(c.length))
  chunker.end((c) => out.push(c.length))
  return out
}

/**
 * Whether compressing these bytes is not worth trying: the order-0 entropy of a sample (up to
 * 8 KiB taken across the whole array) is above 7.5 bits per byte, as for random, encrypted or
 * already-compressed data. Cheap next to zstd, which is slow on such data and gains nothing.
 */
export const looksIncompressible = (bytes: Uint8Array): boolean => {
  if (bytes.length < 4096) return false
  const counts = new Uint32Array(256)
  const samples = 8192
  const stride = Math.max(1, Math.floor(bytes.length / samples))
  let n = 0
  for (let i = 0; i < bytes.length && n < samples; i += stride, n++) counts[bytes[i]!]!++
  let entropy = 0
  for (const c of counts) if (c > 0) { const p = c / n; entropy -= p * Math.log2(p) }
  return entropy > 7.5
}
