/**
 * Nix's strings are bytes: a `.drv` file may hold Latin-1 or any other bytes that are not UTF-8
 * (`derivation { x = "<byte 0xe9>"; }` in a Latin-1 `.nix` file). b3 keeps such strings as
 * JavaScript strings without losing a byte, in the way Python's `surrogateescape` does:
 *
 * - bytes that are valid UTF-8 decode to the characters they encode;
 * - every other byte `b` (0x80–0xff) becomes the lone low surrogate U+DC00+b (U+DC80–U+DCFF),
 *   which valid UTF-8 can never produce.
 *
 * `encode` reverses it exactly, so `encode(decode(bytes))` is `bytes` for every byte sequence. A
 * string from anywhere else that holds a lone surrogate outside U+DC80–U+DCFF has no bytes; it is
 * encoded as U+FFFD (as `TextEncoder` does). Valid UTF-8 costs one native check and one native decode.
 */
import { isUtf8 } from "node:buffer"

const escapeBase = 0xdc00

/** `String.prototype.isWellFormed` (ES2024; Node 24 has it, the project's TypeScript lib does not). */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed()

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)

/** Decodes bytes losslessly (see the module comment). */
export const decode = (bytes: Uint8Array): string => {
  const buf = asBuffer(bytes)
  if (isUtf8(buf)) return buf.toString("utf8")
  return decodeSlow(bytes)
}

/** Whether `s` holds an escaped byte (a lone low surrogate U+DC80–U+DCFF), i.e. is not UTF-8 text. */
export const hasEscapes = (s: string): boolean => !wellFormed(s)

const decodeSlow = (bytes: Uint8Array): string => {
  let out = ""
  let i = 0
  let start = 0
  const n = bytes.length
  while (i < n) {
    const b = bytes[i]!
    if (b < 0x80) { i++; continue }
    const len = sequenceLength(bytes, i)
    if (len > 0) { i += len; continue }
    if (start < i) out += asBuffer(bytes.subarray(start, i)).toString("utf8")
    out += String.fromCharCode(escapeBase + b)
    i++
    start = i
  }
  if (start < n) out += asBuffer(bytes.subarray(start, n)).toString("utf8")
  return out
}

const cont = (bytes: Uint8Array, i: number): boolean => i < bytes.length && (bytes[i]! & 0xc0) === 0x80

/** The length of the well-formed UTF-8 sequence starting at `i` (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF), or 0. */
const sequenceLength = (bytes: Uint8Array, i: number): number => {
  const b = bytes[i]!
  if (b >= 0xc2 && b <= 0xdf) return cont(bytes, i + 1) ? 2 : 0
  if (b >= 0xe0 && b <= 0xef) {
    const c = bytes[i + 1]
    if (c === undefined) return 0
    if (b === 0xe0 && c < 0xa0) return 0
    if (b === 0xed && c >= 0xa0) return 0
    return cont(bytes, i + 1) && cont(bytes, i + 2) ? 3 : 0
  }
  if (b >= 0xf0 && b <= 0xf4) {
    const c = bytes[i + 1]
    if (c === undefined) return 0
    if (b === 0xf0 && c < 0x90) return 0
    if (b === 0xf4 && c >= 0x90) return 0
    return cont(bytes, i + 1) && cont(bytes, i + 2) && cont(bytes, i + 3) ? 4 : 0
  }
  return 0
}

/** The bytes a string stands for (see the module comment). */
export const encode = (s: string): Uint8Array => {
  if (wellFormed(s)) return new Uint8Array(Buffer.from(s, "utf8"))
  return encodeSlow(s)
}

/** Like `encode`, as a Buffer (no copy for well-formed strings). */
export const encodeBuffer = (s: string): Buffer => wellFormed(s) ? Buffer.from(s, "utf8") : asBuffer(encodeSlow(s))

const encodeSlow = (s: string): Uint8Array => {
  const parts: Array<Buffer> = []
  let start = 0
  const n = s.length
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c < 0xd800 || c > 0xdfff) continue
    if (c <= 0xdbff) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) { i++; continue }
    }
    // A lone surrogate: an escaped byte, or (anything else) U+FFFD.
    if (start < i) parts.push(Buffer.from(s.slice(start, i), "utf8"))
    parts.push(c >= 0xdc80 && c <= 0xdcff ? Buffer.of(c - escapeBase) : Buffer.of(0xef, 0xbf, 0xbd))
    start = i + 1
  }
  if (start < n) parts.push(Buffer.from(s.slice(start), "utf8"))
  return new Uint8Array(Buffer.concat(parts))
}

/** The number of bytes `s` stands for. */
export const byteLength = (s: string): number => wellFormed(s) ? Buffer.byteLength(s, "utf8") : encodeSlow(s).length

/**
 * Compares two strings by the bytes they stand for (Nix's `std::string` order). Ordinary text
 * compares by code point, which is the same order as UTF-8 bytes.
 */
export const compare = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (!xs && !ys) return x < y ? -1 : 1
    if (wellFormed(a) && wellFormed(b)) {
      // Both are text: a surrogate pair (a code point above U+FFFF) sorts after every BMP code unit,
      // and two pairs with the same high half compare by their low halves.
      if (xs !== ys) return xs ? 1 : -1
      return x < y ? -1 : 1
    }
    return Buffer.compare(encodeBuffer(a), encodeBuffer(b))
  }
  return a.length - b.length
}
