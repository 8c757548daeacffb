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
import { sha256 } from "./sha256.ts"
import { name, section, uleb, vector } from "./wasm-module.ts"

export const FEATURES = 12
export const SUPER_FEATURES = 3

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

// ---- The sampling loop in WebAssembly, the transforms folded in with SIMD ----------------------


/**
 * Memory: the gear table (1 KiB); the 12 multipliers, the 12 addends and the 12 running maxima
 * (48 bytes each, 3 vectors of 4 lanes); the rolling hash and the sample count carried between
 * calls; a window of bytes.
 */
const LAYOUT = { a: 1024, b: 1072, f: 1120, h: 1168, count: 1172, data: 2048, window: 256 * 1024 } as const

/**
 * A module exporting `mem` and `sample(n)`: the gear loop of `featuresJs` over `mem[data .. data + n]`,
 * the hash and the sample count carried in memory; at each sample `h` the three vectors of maxima
 * take `max_u(m, A * h + B)` (i32x4: the 12 transforms, 4 at a time). Assembled here from its
 * opcodes (no toolchain, nothing downloaded).
 */
const wasmBytes = (): Uint8Array<ArrayBuffer> => {
  const I32 = 0x7f
  const V128 = 0x7b
  const get = (i: number) => [0x20, i]
  const set = (i: number) => [0x21, i]
  const c = (n: number) => [0x41, ...uleb(n)] // small non-negative constants only (signed LEB128 agrees below 64)
  const simd = (op: number, ...immediates: Array<number>) => [0xfd, ...uleb(op), ...immediates]
  const load = (at: number) => [...c(0), ...simd(0x00, 4, ...uleb(at))] // v128.load align=16 offset=at
  const store = (local: number, at: number) => [...c(0), ...get(local), ...simd(0x0b, 4, ...uleb(at))]
  // locals: 0 n (param), 1 i, 2 h, 3 count, 4 unused; v128: 5-7 maxima, 8-10 A, 11-13 B, 14 splat
  /** One byte, `data[i + k]`: h = (h << 1) + gear[byte]; at a sample, the maxima take it. */
  const step = (k: number) => [
    ...get(2), ...c(1), 0x74, // h << 1
    ...get(1), 0x2d, 0x00, ...uleb(LAYOUT.data + k), ...c(2), 0x74, 0x28, 0x02, 0x00, // gear[data[i + k]]
    0x6a, ...set(2), // h = ...
    ...get(2), ...c(31), 0x71, 0x45, 0x04, 0x40, // if ((h & 31) == 0)
    ...get(3), ...c(1), 0x6a, ...set(3), // count++
    ...get(2), ...simd(0x11), ...set(14), // splat(h)
    ...[0, 1, 2].flatMap((v) => [...get(5 + v), ...get(14), ...get(8 + v), ...simd(0xb5), ...get(11 + v), ...simd(0xae), ...simd(0xb9), ...set(5 + v)]), // m = max_u(m, h * A + B)
    0x0b // end if
  ]
  const UNROLL = 8
  const code = [
    ...vector([[4, I32], [10, V128]]),
    ...c(0), 0x28, 0x02, ...uleb(LAYOUT.h), ...set(2), // h = mem[h]
    ...c(0), 0x28, 0x02, ...uleb(LAYOUT.count), ...set(3), // count = mem[count]
    ...[0, 1, 2].flatMap((k) => [...load(LAYOUT.f + 16 * k), ...set(5 + k), ...load(LAYOUT.a + 16 * k), ...set(8 + k), ...load(LAYOUT.b + 16 * k), ...set(11 + k)]),
    // UNROLL bytes at a time while that many are left
    0x02, 0x40, 0x03, 0x40, // block loop
    ...get(1), ...c(UNROLL), 0x6a, ...get(0), 0x4b, 0x0d, 1, // if i + UNROLL > n: break
    ...Array.from({ length: UNROLL }, (_, k) => step(k)).flat(),
    ...get(1), ...c(UNROLL), 0x6a, ...set(1), // i += UNROLL
    0x0c, 0, 0x0b, 0x0b, // continue; end loop; end block
    // then one at a time
    0x02, 0x40, 0x03, 0x40, // block loop
    ...get(1), ...get(0), 0x4f, 0x0d, 1, // if i >= n: break
    ...step(0),
    ...get(1), ...c(1), 0x6a, ...set(1), // i++
    0x0c, 0, 0x0b, 0x0b, // continue; end loop; end block
    ...c(0), ...get(2), 0x36, 0x02, ...uleb(LAYOUT.h), // mem[h] = h
    ...c(0), ...get(3), 0x36, 0x02, ...uleb(LAYOUT.count), // mem[count] = count
    ...[0, 1, 2].flatMap((k) => store(5 + k, LAYOUT.f + 16 * k)),
    0x0b
  ]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, vector([[0x60, ...vector([[I32]]), ...vector([])]])),
    ...section(3, vector([[0]])),
    ...section(5, vector([[0x00, ...uleb(Math.ceil((LAYOUT.data + LAYOUT.window) / 65536))]])),
    ...section(7, vector([[...name("sample"), 0x00, 0], [...name("mem"), 0x02, 0]])),
    ...section(10, vector([[...uleb(code.length), ...code]]))
  ])
}

/** What `resemblanceKit` is made from: plain data, so the kit can be made again in a worker thread from its source text. */
export interface ResemblanceDeps {
  readonly wasm: Uint8Array
  readonly gear: ArrayLike<number>
  readonly a: ArrayLike<number>
  readonly b: ArrayLike<number>
  readonly layout: typeof LAYOUT
  /** SHA-256 of a short message (sha256.ts: the workers may not load node:crypto). */
  readonly sha256: (message: Uint8Array) => Uint8Array
}

export const resemblanceDeps = (): ResemblanceDeps => ({ wasm: wasmBytes(), gear: GEAR, a: A, b: B, layout: LAYOUT, sha256 })

/**
 * `features` and `superFeatures` over one instance of the module. Self-contained (it uses only its
 * argument and globals): the chunk store's worker threads run it from its source text, with the
 * same deps, so they compute exactly what this thread does.
 */
export const resemblanceKit = (deps: ResemblanceDeps) => {
  const wasm = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object) => { exports: Record<string, unknown> } } }).WebAssembly
  const instance = new wasm.Instance(new wasm.Module(deps.wasm))
  const buffer = (instance.exports["mem"] as { buffer: ArrayBuffer }).buffer
  const run = instance.exports["sample"] as (n: number) => void
  const L = deps.layout
  new Int32Array(buffer, 0, 256).set(deps.gear)
  new Uint32Array(buffer, L.a, 12).set(deps.a)
  new Uint32Array(buffer, L.b, 12).set(deps.b)
  const maxima = new Uint32Array(buffer, L.f, 12)
  const state = new Int32Array(buffer, L.h, 2)
  const window = new Uint8Array(buffer, L.data, L.window)
  const features = (chunk: Uint8Array): { readonly features: Uint32Array; readonly samples: number } => {
    maxima.fill(0)
    state[0] = 0
    state[1] = 0
    for (let at = 0; at < chunk.length; at += L.window) {
      const piece = chunk.subarray(at, at + L.window)
      window.set(piece)
      run(piece.length)
    }
    return { features: Uint32Array.from(maxima), samples: state[1]! }
  }
  /** Fewer than 8 samples and the maxima say little: no super-features. */
  const superFeatures = (chunk: Uint8Array): Array<number> => {
    const { features: f, samples } = features(chunk)
    if (samples < 8) return []
    const out: Array<number> = []
    for (let s = 0; s < 3; s++) {
      const message = new Uint8Array(17)
      message[0] = s
      message.set(new Uint8Array(f.buffer, s * 16, 16), 1)
      const h = deps.sha256(message)
      // the first 6 bytes, little-endian
      out.push(s * 2 ** 48 + h[0]! + h[1]! * 2 ** 8 + h[2]! * 2 ** 16 + h[3]! * 2 ** 24 + h[4]! * 2 ** 32 + h[5]! * 2 ** 40)
    }
    return out
  }
  return { features, superFeatures }
}

let kit: ReturnType<typeof resemblanceKit> | undefined

/** The chunk's 12 features (all 0 when it has no samples), and how many samples they came from. */
export const features = (chunk: Uint8Array): { readonly features: Uint32Array; readonly samples: number } =>
  (kit ??= resemblanceKit(resemblanceDeps())).features(chunk)

/**
 * The chunk's super-features: up to 3 integers below 2^53 (so they fit a JavaScript number, an
 * SQLite integer and a PostgreSQL bigint), the k-th in [k·2^48, (k+1)·2^48). None for a chunk with
 * too few samples (fewer than 8).
 */
export const superFeatures = (chunk: Uint8Array): Array<number> =>
  (kit ??= resemblanceKit(resemblanceDeps())).superFeatures(chunk)

/** Which super-feature slot (0..2) a super-feature value is. */
export const superFeatureSlot = (sf: number): number => Math.floor(sf / 2 ** 48)

/**
 * Whether these bytes can serve as a raw-content zstd dictionary: zstd takes bytes that begin with
 * its dictionary magic (0xEC30A437) for a formatted dictionary, so such a chunk is never a base.
 */
export const usableAsBase = (bytes: Uint8Array): boolean =>
  bytes.length >= 8 && !(bytes[0] === 0x37 && bytes[1] === 0xa4 && bytes[2] === 0x30 && bytes[3] === 0xec)
