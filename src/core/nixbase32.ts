/**
 * Nix's base-32 encoding: its own alphabet (no e, o, u, t) and a reversed bit order, so the
 * last character holds the lowest bits of the first byte.
 */
import { Result } from "effect"
import { InvalidEncoding } from "./errors.ts"

export const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"

const digitOf = new Int8Array(128).fill(-1)
for (let i = 0; i < alphabet.length; i++) digitOf[alphabet.charCodeAt(i)] = i

/** Number of characters Nix base-32 uses for `byteLength` bytes. */
export const encodedLength = (byteLength: number): number => Math.ceil((byteLength * 8) / 5)

const alphabetCodes = Uint8Array.from(alphabet, (c) => c.charCodeAt(0))
/** The characters of an encoding are put here, then made one string (not one string per character appended). */
let scratch = new Uint8Array(128)
const ascii = new TextDecoder()

export const encode = (bytes: Uint8Array): string => {
  const len = encodedLength(bytes.length)
  if (scratch.length < len) scratch = new Uint8Array(len)
  for (let n = len - 1, k = 0; n >= 0; n--, k++) {
    const b = n * 5
    const i = b >> 3
    const j = b & 7
    const c = (bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0)
    scratch[k] = alphabetCodes[c & 0x1f]!
  }
  return ascii.decode(scratch.subarray(0, len))
}

/** Decodes `text` into `byteLength` bytes; the length must be exactly `encodedLength(byteLength)`. */
export const decode = (text: string, byteLength: number): Result.Result<Uint8Array, InvalidEncoding> => {
  if (text.length !== encodedLength(byteLength)) {
    return Result.fail(new InvalidEncoding({
      input: text,
      reason: `a ${byteLength}-byte value takes ${encodedLength(byteLength)} nix-base32 characters, got ${text.length}`
    }))
  }
  const out = new Uint8Array(byteLength)
  for (let n = 0; n < text.length; n++) {
    const code = text.charCodeAt(text.length - n - 1)
    const digit = code < 128 ? digitOf[code]! : -1
    if (digit < 0) {
      return Result.fail(new InvalidEncoding({
        input: text,
        reason: `'${text[text.length - n - 1]}' is not a nix-base32 character (alphabet ${alphabet})`
      }))
    }
    const b = n * 5
    const i = b >> 3
    const j = b & 7
    out[i] = out[i]! | ((digit << j) & 0xff)
    const carry = digit >> (8 - j)
    if (i < byteLength - 1) out[i + 1] = out[i + 1]! | carry
    else if (carry !== 0) {
      return Result.fail(new InvalidEncoding({ input: text, reason: "nix-base32 value has bits beyond its length" }))
    }
  }
  return Result.succeed(out)
}

export const isNixBase32 = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 128 || digitOf[code]! < 0) return false
  }
  return true
}
