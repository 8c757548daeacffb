/**
 * The chunk store's formats, all binary, versioned and decoded totally (any bytes give a value or
 * an `InvalidChunkFormat`, never a throw or an allocation larger than the input):
 *
 * - **Manifest** (per store path): the NAR size, the hashes normalised out of it and their position
 *   table, the packs its chunks were written to, and its chunks in order (id = sha256 of the
 *   normalised bytes, length, pack).
 * - **Path record** (`paths/<hashPart>.b3p`): the path's narinfo text (Nix's format: path, NAR hash
 *   and size, references, deriver, signatures, CA) followed by its manifest.
 * - **Pack index** (`packs/<name>.idx`): the current version of a pack and where each of its chunks
 *   sits in it (offset, stored length, raw length, codec).
 *
 *   Codec 0: the chunk's bytes as they are; 1: one zstd frame; 2: one zstd frame compressed with
 *   another chunk's raw bytes (its *base*) as a raw-content dictionary. A base is always stored
 *   with codec 0 or 1 (chains are one deep). Version 2 of the pack index adds, for each codec-2
 *   entry, the base's id and the pack it is in (its place for a reader with only the blobs: a base
 *   stays in its pack, whatever version, while any chunk needs it). Version 1 (no deltas) is still
 *   read, and still written for a pack without deltas.
 */
import { Schema } from "effect"
import { Result } from "effect"
import { ByteReader, ByteWriter } from "./binary.ts"
import { HASH_LENGTH, isHashPart, type Position } from "./normalise.ts"

export class InvalidChunkFormat extends Schema.TaggedError<InvalidChunkFormat>()("InvalidChunkFormat", {
  what: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `invalid ${this.what}: ${this.reason}` }
}

export const CHUNK_ID_LENGTH = 32
export const PACK_NAME_LENGTH = 8

export type Codec = 0 | 1 | 2
export const CODEC_RAW: Codec = 0
export const CODEC_ZSTD: Codec = 1
export const CODEC_DELTA: Codec = 2

export interface ManifestChunk {
  /** sha256 of the chunk's normalised (uncompressed) bytes. */
  readonly id: Uint8Array
  readonly length: number
  /** Index into `packs`. */
  readonly pack: number
}

export interface Manifest {
  readonly narSize: number
  readonly hashes: ReadonlyArray<string>
  readonly positions: ReadonlyArray<Position>
  /** Pack names (8 bytes each) the chunks were stored in. */
  readonly packs: ReadonlyArray<Uint8Array>
  readonly chunks: ReadonlyArray<ManifestChunk>
}

const MANIFEST_MAGIC = [0x42, 0x33, 0x43, 0x4d, 1] // "B3CM" v1
const RECORD_MAGIC = [0x42, 0x33, 0x43, 0x50, 1] // "B3CP" v1
const INDEX_MAGIC = [0x42, 0x33, 0x50, 0x49] // "B3PI", then the version (1, or 2 with deltas)

const writeManifest = (w: ByteWriter, m: Manifest): void => {
  for (const b of MANIFEST_MAGIC) w.byte(b)
  w.varint(m.narSize)
  w.varint(m.hashes.length)
  for (const h of m.hashes) w.bytes(new TextEncoder().encode(h))
  w.varint(m.positions.length)
  let end = 0
  for (const p of m.positions) {
    w.varint(p.offset - end).varint(p.index)
    end = p.offset + HASH_LENGTH
  }
  w.varint(m.packs.length)
  for (const p of m.packs) w.bytes(p)
  w.varint(m.chunks.length)
  for (const c of m.chunks) w.bytes(c.id).varint(c.length).varint(c.pack)
}

export const encodeManifest = (m: Manifest): Uint8Array => {
  const w = new ByteWriter()
  writeManifest(w, m)
  return w.finish()
}

const readMagic = (r: ByteReader, magic: ReadonlyArray<number>, what: string): void => {
  for (const b of magic) if (r.byte() !== b) { r.fail(`not a ${what} (or an unknown version)`); return }
}

const readManifest = (r: ByteReader): Manifest => {
  readMagic(r, MANIFEST_MAGIC, "manifest")
  const narSize = r.varint()
  const hashes: Array<string> = []
  for (let i = r.count(HASH_LENGTH, "hashes"); i > 0 && r.error === undefined; i--) {
    const h = String.fromCharCode(...r.bytes(HASH_LENGTH))
    if (r.error === undefined && !isHashPart(h)) r.fail("a normalised hash is not 32 nix-base32 characters")
    hashes.push(h)
  }
  const positions: Array<Position> = []
  let end = 0
  for (let i = r.count(2, "positions"); i > 0 && r.error === undefined; i--) {
    const offset = end + r.varint()
    const index = r.varint()
    if (index >= hashes.length) r.fail(`position names hash ${index} of ${hashes.length}`)
    end = offset + HASH_LENGTH
    if (end > narSize) r.fail("a position lies outside the NAR")
    positions.push({ offset, index })
  }
  const packs: Array<Uint8Array> = []
  for (let i = r.count(PACK_NAME_LENGTH, "packs"); i > 0 && r.error === undefined; i--) packs.push(r.bytes(PACK_NAME_LENGTH))
  const chunks: Array<ManifestChunk> = []
  let total = 0
  for (let i = r.count(CHUNK_ID_LENGTH + 2, "chunks"); i > 0 && r.error === undefined; i--) {
    const id = r.bytes(CHUNK_ID_LENGTH)
    const length = r.varint()
    const pack = r.varint()
    if (length === 0) r.fail("an empty chunk")
    if (pack >= packs.length) r.fail(`chunk names pack ${pack} of ${packs.length}`)
    total += length
    chunks.push({ id, length, pack })
  }
  if (r.error === undefined && total !== narSize) r.fail(`chunks add up to ${total} bytes, not the NAR's ${narSize}`)
  return { narSize, hashes, positions, packs, chunks }
}

const decodeWith = <A>(what: string, bytes: Uint8Array, read: (r: ByteReader) => A): Result.Result<A, InvalidChunkFormat> => {
  const r = new ByteReader(bytes)
  const value = read(r)
  r.end()
  return r.error === undefined ? Result.succeed(value) : Result.fail(new InvalidChunkFormat({ what, reason: r.error }))
}

export const decodeManifest = (bytes: Uint8Array): Result.Result<Manifest, InvalidChunkFormat> =>
  decodeWith("manifest", bytes, readManifest)

export interface PathRecord {
  /** The narinfo (Nix's text format; its URL/Compression fields are not used). */
  readonly narInfo: string
  readonly manifest: Manifest
}

export const encodePathRecord = (record: PathRecord): Uint8Array => {
  const w = new ByteWriter()
  for (const b of RECORD_MAGIC) w.byte(b)
  w.string(record.narInfo)
  writeManifest(w, record.manifest)
  return w.finish()
}

export const decodePathRecord = (bytes: Uint8Array): Result.Result<PathRecord, InvalidChunkFormat> =>
  decodeWith("path record", bytes, (r) => {
    readMagic(r, RECORD_MAGIC, "path record")
    const narInfo = r.string()
    return { narInfo, manifest: readManifest(r) }
  })

/** Where the base of a delta chunk is: its id and its pack's name. */
export interface BaseRef {
  readonly id: Uint8Array
  readonly pack: Uint8Array
}

export interface PackEntry {
  readonly id: Uint8Array
  readonly offset: number
  readonly stored: number
  readonly raw: number
  readonly codec: Codec
  /** For codec 2 only. */
  readonly base?: BaseRef | undefined
}

export interface PackIndex {
  readonly name: Uint8Array
  readonly version: number
  /** Sorted by offset, not overlapping. */
  readonly entries: ReadonlyArray<PackEntry>
}

export const encodePackIndex = (index: PackIndex): Uint8Array => {
  const w = new ByteWriter()
  const deltas = index.entries.some((e) => e.codec === CODEC_DELTA)
  for (const b of INDEX_MAGIC) w.byte(b)
  w.byte(deltas ? 2 : 1)
  w.bytes(index.name).varint(index.version).varint(index.entries.length)
  let end = 0
  for (const e of index.entries) {
    w.bytes(e.id).varint(e.offset - end).varint(e.stored).varint(e.raw).byte(e.codec)
    if (e.codec === CODEC_DELTA) {
      const base = e.base ?? { id: new Uint8Array(CHUNK_ID_LENGTH), pack: new Uint8Array(PACK_NAME_LENGTH) }
      w.bytes(base.id).bytes(base.pack)
    }
    end = e.offset + e.stored
  }
  return w.finish()
}

export const decodePackIndex = (bytes: Uint8Array): Result.Result<PackIndex, InvalidChunkFormat> =>
  decodeWith("pack index", bytes, (r) => {
    readMagic(r, INDEX_MAGIC, "pack index")
    const format = r.byte()
    if (r.error === undefined && format !== 1 && format !== 2) r.fail(`not a pack index (or an unknown version: ${format})`)
    const name = r.bytes(PACK_NAME_LENGTH)
    const version = r.varint()
    const entries: Array<PackEntry> = []
    let end = 0
    for (let i = r.count(CHUNK_ID_LENGTH + 4, "entries"); i > 0 && r.error === undefined; i--) {
      const id = r.bytes(CHUNK_ID_LENGTH)
      const offset = end + r.varint()
      const stored = r.varint()
      const raw = r.varint()
      const codec = r.byte()
      if (codec !== 0 && codec !== 1 && !(codec === 2 && format === 2)) r.fail(`unknown codec ${codec}`)
      if (stored === 0 || raw === 0) r.fail("an empty chunk")
      if (codec === 0 && stored !== raw) r.fail("a raw chunk whose stored and raw lengths differ")
      let base: BaseRef | undefined
      if (codec === CODEC_DELTA) {
        base = { id: r.bytes(CHUNK_ID_LENGTH), pack: r.bytes(PACK_NAME_LENGTH) }
        if (r.error === undefined && Buffer.compare(base.id, id) === 0) r.fail("a chunk is its own base")
      }
      end = offset + stored
      entries.push(base ? { id, offset, stored, raw, codec: codec as Codec, base } : { id, offset, stored, raw, codec: codec as Codec })
    }
    return { name, version, entries }
  })

/**
 * The bytes as one zstd frame of raw (stored) blocks: what a zstd reader decompresses back to the
 * bytes, made without compressing (for chunks served as zstd that were not stored compressed).
 */
export const rawZstdFrame = (bytes: Uint8Array): Uint8Array => {
  const BLOCK = 128 * 1024
  const blocks = Math.max(1, Math.ceil(bytes.length / BLOCK))
  const out = new Uint8Array(4 + 1 + 4 + blocks * 3 + bytes.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, 0xfd2fb528, true) // magic
  out[4] = 0xa0 // single segment, 4-byte frame content size, no checksum, no dictionary
  view.setUint32(5, bytes.length, true)
  let at = 9
  for (let b = 0; b < blocks; b++) {
    const size = Math.min(BLOCK, bytes.length - b * BLOCK)
    const header = (size << 3) | (b === blocks - 1 ? 1 : 0) // raw block type 0
    out[at] = header & 0xff
    out[at + 1] = (header >>> 8) & 0xff
    out[at + 2] = (header >>> 16) & 0xff
    out.set(bytes.subarray(b * BLOCK, b * BLOCK + size), at + 3)
    at += 3 + size
  }
  return out
}
