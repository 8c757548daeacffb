/**
 * Resemblance of chunks, for delta compression: a chunk that is not an exact duplicate of one
 * already stored may still be *similar* to one (the next version of a library, with a few bytes
 * changed here and there). Similar chunks are found by their super-features (the N-transform
 * method of Shilane et al., "WAN optimized replication of backup datasets using stream-informed
 * delta compression", FAST 2012):
 *
 * - a gear rolling hash `h` runs over the chunk; at the positions where `h & 0x1f == 0` (one in 32
 *   on average, so a few thousand in a 64 KiB chunk) it is sampled;
 * - feature k (of 12) is the maximum over the samples of `(A_k * h + B_k) mod 2^32` — 12 fixed,
 *   different linear transforms, each picking a different "most extreme" sample;
 * - features are grouped 4 by 4 into 3 super-features; two chunks that share one super-feature
 *   agree on 4 maxima and are very likely to share most of their content.
 *
 * Deterministic (the constants are derived from fixed strings) and total: any bytes give a value.
 * A chunk too short to have a few samples has no super-features (it is never matched).
 */
import { createHash } from "node:crypto"
import { name, section, uleb, vector } from "./wasm-module.ts"

export const FEATURES = 12
export const SUPER_FEATURES = 3
const PER_SUPER = FEATURES / SUPER_FEATURES
/** Fewer samples than this and the maxima say little: no super-features. */
const MIN_SAMPLES = 8

const word = (label: string) => createHash("sha256").update(label).digest().readUInt32LE(0)
const GEAR = Int32Array.from({ length: 256 }, (_, i) => word(`b3 resemblance gear ${i}`) | 0)
const A = Uint32Array.from({ length: FEATURES }, (_, k) => (word(`b3 resemblance a ${k}`) | 1) >>> 0)
const B = Uint32Array.from({ length: FEATURES }, (_, k) => word(`b3 resemblance b ${k}`))

/** The maxima of the 12 transforms over sampled hashes `samples[0 .. n]`, folded into `f`. */
const fold = (f: Uint32Array, samples: Int32Array, n: number) => {
  for (let k = 0; k < FEATURES; k++) {
    const a = A[k]!, b = B[k]!
    let m = f[k]!
    for (let s = 0; s < n; s++) {
      const v = (Math.imul(a, samples[s]!) + b) >>> 0
      if (v > m) m = v
    }
    f[k] = m
  }
}

/** The chunk's 12 features in plain TypeScript (the reference the WebAssembly sampler is tested against). */
export const featuresJs = (chunk: Uint8Array): { readonly features: Uint32Array; readonly samples: number } => {
  const f = new Uint32Array(FEATURES)
  const buffer = new Int32Array(1024)
  let h = 0
  let samples = 0
  let n = 0
  for (let i = 0; i < chunk.length; i++) {
    h = ((h << 1) + GEAR[chunk[i]!]!) | 0
    if ((h & 0x1f) !== 0) continue
    buffer[n++] = h
    if (n === buffer.length) { fold(f, buffer, n); samples += n; n = 0 }
  }
  fold(f, buffer, n)
  return { features: f, samples: samples + n }
}

// ---- The sampling loop in WebAssembly (several times faster than the TypeScript one) ----------


/** Memory: the gear table (1 KiB), the rolling hash carried between calls, a window of bytes, the samples. */
const H_AT = 1024
const DATA = 2048
const WINDOW = 256 * 1024
const OUT = DATA + WINDOW
const PAGES = Math.ceil((OUT + 4 * WINDOW) / 65536)

/**
 * A module exporting `mem` and `sample(i, stop, out) -> out'`: the gear loop of `featuresJs` over
 * `mem[DATA + i .. DATA + stop]`, the hash carried in `mem[H_AT]`, each sampled hash stored at
 * `mem[OUT + out]` (4 bytes each). Assembled here from its opcodes (no toolchain, nothing downloaded).
 */
const wasmBytes = (): Uint8Array<ArrayBuffer> => {
  const I32 = 0x7f
  const get = (i: number) => [0x20, i]
  const set = (i: number) => [0x21, i]
  const c = (n: number) => [0x41, ...uleb(n)] // small non-negative constants only (signed LEB128 agrees below 64)
  // locals: 0 i, 1 stop, 2 out, 3 h
  const code = [
    ...vector([[1, I32]]),
    ...c(0), 0x28, 0x02, ...uleb(H_AT), ...set(3), // h = mem[H_AT]
    0x02, 0x40, 0x03, 0x40, // block loop
    ...get(0), ...get(1), 0x4f, 0x0d, 1, // if i >= stop: break
    ...get(3), ...c(1), 0x74, // h << 1
    ...get(0), 0x2d, 0x00, ...uleb(DATA), ...c(2), 0x74, 0x28, 0x02, 0x00, // gear[data[i]]
    0x6a, ...set(3), // h = ...
    ...get(0), ...c(1), 0x6a, ...set(0), // i++
    ...get(3), ...c(31), 0x71, 0x45, 0x04, 0x40, // if ((h & 31) == 0)
    ...get(2), ...get(3), 0x36, 0x02, ...uleb(OUT), // mem[OUT + out] = h
    ...get(2), ...c(4), 0x6a, ...set(2), // out += 4
    0x0b, // end if
    0x0c, 0, 0x0b, 0x0b, // continue; end loop; end block
    ...c(0), ...get(3), 0x36, 0x02, ...uleb(H_AT), // mem[H_AT] = h
    ...get(2), 0x0b
  ]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, vector([[0x60, ...vector([[I32], [I32], [I32]]), ...vector([[I32]])]])),
    ...section(3, vector([[0]])),
    ...section(5, vector([[0x00, ...uleb(PAGES)]])),
    ...section(7, vector([[...name("sample"), 0x00, 0], [...name("mem"), 0x02, 0]])),
    ...section(10, vector([[...uleb(code.length), ...code]]))
  ])
}

interface WasmApi {
  readonly Module: new (bytes: Uint8Array<ArrayBuffer>) => object
  readonly Instance: new (module: object) => { readonly exports: Record<string, unknown> }
}

let sampler: { readonly bytes: Uint8Array; readonly hash: Int32Array; readonly samples: Int32Array; readonly run: (i: number, stop: number, out: number) => number } | undefined

const makeSampler = () => {
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly
  const instance = new wasm.Instance(new wasm.Module(wasmBytes()))
  const memory = instance.exports["mem"] as { readonly buffer: ArrayBuffer }
  new Int32Array(memory.buffer, 0, 256).set(GEAR)
  return {
    bytes: new Uint8Array(memory.buffer, DATA, WINDOW),
    hash: new Int32Array(memory.buffer, H_AT, 1),
    samples: new Int32Array(memory.buffer, OUT, WINDOW),
    run: instance.exports["sample"] as (i: number, stop: number, out: number) => number
  }
}

/** The chunk's 12 features (all 0 when it has no samples), and how many samples they came from. */
export const features = (chunk: Uint8Array): { readonly features: Uint32Array; readonly samples: number } => {
  sampler ??= makeSampler()
  const { bytes, hash, samples, run } = sampler
  const f = new Uint32Array(FEATURES)
  let count = 0
  hash[0] = 0
  for (let at = 0; at < chunk.length; at += WINDOW) {
    const piece = chunk.subarray(at, at + WINDOW)
    bytes.set(piece)
    const n = run(0, piece.length, 0) >>> 2
    fold(f, samples, n)
    count += n
  }
  return { features: f, samples: count }
}

/**
 * The chunk's super-features: up to 3 integers below 2^53 (so they fit a JavaScript number, an
 * SQLite integer and a PostgreSQL bigint), the k-th in [k·2^48, (k+1)·2^48). None for a chunk with
 * too few samples.
 */
export const superFeatures = (chunk: Uint8Array): Array<number> => {
  const { features: f, samples } = features(chunk)
  if (samples < MIN_SAMPLES) return []
  const out: Array<number> = []
  for (let s = 0; s < SUPER_FEATURES; s++) {
    const h = createHash("sha256").update(new Uint8Array([s])).update(new Uint8Array(f.buffer, s * PER_SUPER * 4, PER_SUPER * 4)).digest()
    out.push(s * 2 ** 48 + h.readUIntLE(0, 6))
  }
  return out
}

/** Which super-feature slot (0..2) a super-feature value is. */
export const superFeatureSlot = (sf: number): number => Math.floor(sf / 2 ** 48)

/**
 * Whether these bytes can serve as a raw-content zstd dictionary: zstd takes bytes that begin with
 * its dictionary magic (0xEC30A437) for a formatted dictionary, so such a chunk is never a base.
 */
export const usableAsBase = (bytes: Uint8Array): boolean =>
  bytes.length >= 8 && !(bytes[0] === 0x37 && bytes[1] === 0xa4 && bytes[2] === 0x30 && bytes[3] === 0xec)
