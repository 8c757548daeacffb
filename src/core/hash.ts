/**
 * Hashes as Nix uses them: four algorithms, four printed forms (base16, nix-base32, base64, SRI)
 * and the `algo:hash` forms Nix accepts. Digests come from node:crypto (OpenSSL), which is pure
 * computation, not I/O.
 */
import { createHash, type Hash as NodeHash } from "node:crypto"
import { Result } from "effect"
import * as ByteString from "./byte-string.ts"
import { InvalidHash } from "./errors.ts"
import * as NixBase32 from "./nixbase32.ts"

export type HashAlgorithm = "md5" | "sha1" | "sha256" | "sha512"
export const hashAlgorithms: ReadonlyArray<HashAlgorithm> = ["md5", "sha1", "sha256", "sha512"]
export type HashEncoding = "base16" | "base32" | "base64" | "sri"
export const hashEncodings: ReadonlyArray<HashEncoding> = ["base16", "base32", "base64", "sri"]

export const digestSize: Record<HashAlgorithm, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 }

export interface Hash {
  readonly algorithm: HashAlgorithm
  readonly bytes: Uint8Array
}

export const isHashAlgorithm = (s: string): s is HashAlgorithm => s in digestSize

export const make = (algorithm: HashAlgorithm, bytes: Uint8Array): Hash => ({ algorithm, bytes })

/** Same algorithm and digest (a loop over at most 64 bytes: no Buffer made per comparison). */
export const equals = (a: Hash, b: Hash): boolean => {
  if (a.algorithm !== b.algorithm || a.bytes.length !== b.bytes.length) return false
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false
  return true
}

// ---------------------------------------------------------------------------------------------
// Computing

/** The hash of bytes, or of the bytes a string stands for (UTF-8, with escaped bytes as in ./byte-string.ts). */
export const hashBytes = (algorithm: HashAlgorithm, data: Uint8Array | string): Hash =>
  make(algorithm, new Uint8Array(createHash(algorithm).update(typeof data === "string" ? ByteString.encodeBuffer(data) : data).digest()))

/** An incremental hasher for streams: feed chunks with `update`, then `digest` once. */
export interface Hasher {
  readonly update: (chunk: Uint8Array) => void
  readonly digest: () => Hash
}

export const hasher = (algorithm: HashAlgorithm): Hasher => {
  const h: NodeHash = createHash(algorithm)
  return {
    update: (chunk) => { h.update(chunk) },
    digest: () => make(algorithm, new Uint8Array(h.digest()))
  }
}

/** XOR-folds a hash to `size` bytes, as Nix does to make the 20-byte store path digest. */
export const compress = (bytes: Uint8Array, size: number): Uint8Array => {
  const out = new Uint8Array(size)
  for (let i = 0; i < bytes.length; i++) out[i % size] = out[i % size]! ^ bytes[i]!
  return out
}

// ---------------------------------------------------------------------------------------------
// Printing

const toBase16 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")
const toBase64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64")

/** The bare digest in one encoding (SRI includes its `algo-` prefix by definition). */
export const encode = (hash: Hash, encoding: HashEncoding): string => {
  switch (encoding) {
    case "base16": return toBase16(hash.bytes)
    case "base32": return NixBase32.encode(hash.bytes)
    case "base64": return toBase64(hash.bytes)
    case "sri": return `${hash.algorithm}-${toBase64(hash.bytes)}`
  }
}

/** `algo:digest` (or SRI), the form Nix prints with the algorithm included. */
export const print = (hash: Hash, encoding: HashEncoding = "base32"): string =>
  encoding === "sri" ? encode(hash, "sri") : `${hash.algorithm}:${encode(hash, encoding)}`

export const toBase16String = (hash: Hash) => encode(hash, "base16")
export const toBase32String = (hash: Hash) => encode(hash, "base32")

// ---------------------------------------------------------------------------------------------
// Parsing

const base16Re = /^[0-9a-fA-F]*$/

const encodedLengths = (algorithm: HashAlgorithm) => {
  const size = digestSize[algorithm]
  return { base16: size * 2, base32: NixBase32.encodedLength(size), base64: Math.ceil(size / 3) * 4 }
}

const fail = (input: string, reason: string) => Result.fail(new InvalidHash({ input, reason }))

const base64Digits = new Int8Array(128).fill(-1)
for (const [i, c] of [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"].entries()) base64Digits[c.charCodeAt(0)] = i

/**
 * Base64 as Nix 2.8's `base64Decode` reads it: stops at the first `=` (so padding may be missing
 * or longer, and anything after it is ignored), skips newlines, ignores leftover bits.
 */
const base64DecodeLoose = (text: string): Uint8Array | string => {
  const out: Array<number> = []
  let d = 0
  let bits = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x3d) break
    if (c === 0x0a) continue
    const digit = c < 128 ? base64Digits[c]! : -1
    if (digit < 0) return `invalid character in Base64 string: '${text[i]}'`
    bits += 6
    d = ((d << 6) | digit) & 0xfff
    if (bits >= 8) { out.push((d >> (bits - 8)) & 0xff); bits -= 8 }
  }
  return Uint8Array.from(out)
}

const decodeBase64 = (input: string, digest: string, algorithm: HashAlgorithm, sri: boolean): Result.Result<Hash, InvalidHash> => {
  const bytes = base64DecodeLoose(digest)
  if (typeof bytes === "string") return fail(input, bytes)
  if (bytes.length !== digestSize[algorithm]) return fail(input, `not a valid ${sri ? "SRI" : "base64"} ${algorithm} digest (${bytes.length} bytes instead of ${digestSize[algorithm]})`)
  return Result.succeed(make(algorithm, bytes))
}

/** Decodes a bare digest of a known algorithm, recognising base16, nix-base32 or base64 by its length. */
export const decodeDigest = (input: string, digest: string, algorithm: HashAlgorithm): Result.Result<Hash, InvalidHash> => {
  const lengths = encodedLengths(algorithm)
  if (digest.length === lengths.base16) {
    if (!base16Re.test(digest)) return fail(input, `not a valid base16 ${algorithm} digest`)
    return Result.succeed(make(algorithm, new Uint8Array(Buffer.from(digest, "hex"))))
  }
  if (digest.length === lengths.base32) {
    const bytes = NixBase32.decode(digest, digestSize[algorithm])
    return Result.isFailure(bytes) ? fail(input, bytes.failure.reason) : Result.succeed(make(algorithm, bytes.success))
  }
  if (digest.length === lengths.base64) return decodeBase64(input, digest, algorithm, false)
  return fail(input, `a ${algorithm} digest has ${lengths.base16} (base16), ${lengths.base32} (nix-base32) or ${lengths.base64} (base64) characters, not ${digest.length}`)
}

const parseAlgorithm = (input: string, name: string): Result.Result<HashAlgorithm, InvalidHash> =>
  isHashAlgorithm(name) ? Result.succeed(name) : fail(input, `unknown hash algorithm '${name}' (expected one of ${hashAlgorithms.join(", ")})`)

/**
 * Parses any form Nix 2.8 accepts (`Hash::parseAny`): `algo:digest` (base16, nix-base32 or base64,
 * told apart by length), SRI `algo-base64` (padding optional, extra padding and trailing bits
 * ignored, as Nix's decoder does), or a bare digest when `algorithm` is given.
 */
export const parse = (input: string, algorithm?: HashAlgorithm): Result.Result<Hash, InvalidHash> => {
  const colon = input.indexOf(":")
  if (colon >= 0) {
    // (plain code, not Result.flatMap: content addresses of paths sent to a daemon come this way)
    const algo = parseAlgorithm(input, input.slice(0, colon))
    if (Result.isFailure(algo)) return Result.fail(algo.failure)
    return algorithm !== undefined && algo.success !== algorithm
      ? fail(input, `expected a ${algorithm} hash, got ${algo.success}`)
      : decodeDigest(input, input.slice(colon + 1), algo.success)
  }
  const dash = input.indexOf("-")
  if (dash >= 0) {
    return Result.flatMap(parseAlgorithm(input, input.slice(0, dash)), (algo) =>
      algorithm !== undefined && algo !== algorithm
        ? fail(input, `expected a ${algorithm} hash, got ${algo}`)
        : decodeBase64(input, input.slice(dash + 1), algo, true))
  }
  if (algorithm === undefined) return fail(input, "the hash has no algorithm: write it as 'sha256:…' or SRI 'sha256-…'")
  return decodeDigest(input, input, algorithm)
}
