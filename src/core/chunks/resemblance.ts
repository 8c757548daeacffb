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

export const FEATURES = 12
export const SUPER_FEATURES = 3
const PER_SUPER = FEATURES / SUPER_FEATURES
/** Fewer samples than this and the maxima say little: no super-features. */
const MIN_SAMPLES = 8

const word = (label: string) => createHash("sha256").update(label).digest().readUInt32LE(0)
const GEAR = Int32Array.from({ length: 256 }, (_, i) => word(`b3 resemblance gear ${i}`) | 0)
const A = Uint32Array.from({ length: FEATURES }, (_, k) => (word(`b3 resemblance a ${k}`) | 1) >>> 0)
const B = Uint32Array.from({ length: FEATURES }, (_, k) => word(`b3 resemblance b ${k}`))

/** The chunk's 12 features (all 0 when it has no samples), and how many samples they came from. */
export const features = (chunk: Uint8Array): { readonly features: Uint32Array; readonly samples: number } => {
  const f = new Uint32Array(FEATURES)
  let h = 0
  let samples = 0
  for (let i = 0; i < chunk.length; i++) {
    h = ((h << 1) + GEAR[chunk[i]!]!) | 0
    if ((h & 0x1f) !== 0) continue
    samples++
    for (let k = 0; k < FEATURES; k++) {
      const v = (Math.imul(A[k]!, h) + B[k]!) >>> 0
      if (v > f[k]!) f[k] = v
    }
  }
  return { features: f, samples }
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
