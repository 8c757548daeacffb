/**
 * Decoders for Nix's wire format (little-endian u64 numbers, strings as a u64 length then the bytes
 * padded with zeros to a multiple of 8, lists as a count then the items), written once and run
 * either over bytes in memory (`decodeBytes`, total: any input gives a value or a typed error) or
 * over a connection (src/io/wire-io.ts), which supplies bytes as they arrive.
 *
 * A decoder is a generator that yields instructions: `Read(n)` (resumed with exactly n bytes) or
 * `Fail(error)` (never resumed). Every length is checked against a limit before bytes are asked
 * for, so a peer that announces 2^63 bytes gets `WireTooLarge`, not an allocation.
 *
 * Every `Read` a decoder yields is one shared object, rewritten for each read (a daemon decodes
 * ~30 reads per path it is sent): a driver takes `n` and `what` out of it before it resumes any
 * decoder, and keeps no instruction across a resumption.
 */
import { Result } from "effect"
import { WireMalformed, WireTooLarge, WireTruncated, type WireError } from "./errors.ts"

export type Instruction =
  | { readonly _tag: "Read"; readonly n: number; readonly what: string }
  | { readonly _tag: "Fail"; readonly error: WireError }

export type Decoder<A> = Generator<Instruction, A, Uint8Array>

/** Limits on what a peer may send; they bound memory whatever the length fields say. */
export const limits = {
  /** store paths, hash parts, names, settings */
  shortString: 64 * 1024,
  /** text contents (AddTextToStore), derivation env values, error messages */
  longString: 64 * 1024 * 1024,
  /** paths in one request (QueryValidPaths of a whole closure) */
  listLength: 1 << 20,
  /** overrides in SetOptions, outputs of a derivation, env entries */
  smallList: 1 << 16
} as const

const utf8 = new TextDecoder("utf-8", { fatal: false })

/**
 * UTF-8 text of bytes (invalid sequences become U+FFFD). Node's decoder beats a JavaScript loop even
 * for short ASCII strings (a 60-byte store path: ~90 ns, `String.fromCharCode.apply` ~350 ns).
 */
const text = (b: Uint8Array): string => utf8.decode(b)

/** The one `Read` instruction all decoders yield (see the module's comment). */
const readInstruction: { _tag: "Read"; n: number; what: string } = { _tag: "Read", n: 0, what: "" }
const reading = (n: number, what: string): Instruction => {
  readInstruction.n = n
  readInstruction.what = what
  return readInstruction
}

export function* read(n: number, what: string): Decoder<Uint8Array> {
  return yield reading(n, what)
}

export function* fail(error: WireError): Decoder<never> {
  yield { _tag: "Fail", error }
  // A driver never resumes after Fail.
  throw new Error("wire decoder resumed after a failure")
}

const two32 = 0x1_0000_0000

/** The u64 at `offset` as a bigint (exact). */
export const u64At = (b: Uint8Array, offset = 0): bigint => {
  const lo = (b[offset]! | (b[offset + 1]! << 8) | (b[offset + 2]! << 16) | (b[offset + 3]! << 24)) >>> 0
  const hi = (b[offset + 4]! | (b[offset + 5]! << 8) | (b[offset + 6]! << 16) | (b[offset + 7]! << 24)) >>> 0
  return (BigInt(hi) << 32n) | BigInt(lo)
}

/** A u64 that must fit in a JS number (below 2^53). */
export function* u64(what = "a number"): Decoder<number> {
  const b: Uint8Array = yield reading(8, what) // (not `yield* read(…)`: no nested decoder for the commonest read)
  const lo = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0
  const hi = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0
  if (hi > 0x1f_ffff) return yield* fail(new WireTooLarge({ what, length: u64At(b).toString(), max: Number.MAX_SAFE_INTEGER }))
  return hi * two32 + lo
}

/** A u64 where values beyond 2^53 mean "no limit" (e.g. GC's maxFreed): clamped to MAX_SAFE_INTEGER. */
export function* u64Clamped(what = "a number"): Decoder<number> {
  const b: Uint8Array = yield reading(8, what)
  const v = u64At(b)
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)
}

/** A number that must be at most `max` (Nix's `readInt` is an unsigned int). */
export function* uint(what: string, max = 0xffff_ffff): Decoder<number> {
  const n = yield* u64(what)
  if (n > max) return yield* fail(new WireTooLarge({ what, length: String(n), max }))
  return n
}

export function* bool(what = "a flag"): Decoder<boolean> {
  const b: Uint8Array = yield reading(8, what)
  for (let i = 0; i < 8; i++) if (b[i] !== 0) return true
  return false
}

export const paddingOf = (n: number): number => (8 - (n % 8)) % 8

/**
 * A length-prefixed, zero-padded byte string of at most `max` bytes, as `as` makes it of its bytes
 * (which may be a view of the input). Written out flat, without nested decoders: lists of thousands
 * of paths go through here, and a daemon reads several strings for every path it is sent.
 */
function* lengthPrefixed<A>(what: string, max: number, as: (b: Uint8Array) => A): Decoder<A> {
  const l: Uint8Array = yield reading(8, what)
  const lo = (l[0]! | (l[1]! << 8) | (l[2]! << 16) | (l[3]! << 24)) >>> 0
  const hi = (l[4]! | (l[5]! << 8) | (l[6]! << 16) | (l[7]! << 24)) >>> 0
  const n = hi * two32 + lo
  if (hi > 0x1f_ffff || n > max) return yield* fail(new WireTooLarge({ what: `the length of ${what}`, length: u64At(l).toString(), max }))
  const pad = paddingOf(n)
  const b: Uint8Array = yield reading(n + pad, what)
  for (let i = n; i < n + pad; i++) {
    if (b[i] !== 0) return yield* fail(new WireMalformed({ reason: `non-zero padding after ${what}` }))
  }
  return as(b.subarray(0, n))
}

const asBytes = (b: Uint8Array): Uint8Array => b

/** A byte string of at most `max` bytes (the result may be a view of the input). */
export const bytes = (what: string, max: number): Decoder<Uint8Array> => lengthPrefixed(what, max, asBytes)

/** A byte string as text (UTF-8). */
export const string = (what: string, max: number = limits.shortString): Decoder<string> => lengthPrefixed(what, max, text)

/** A count-prefixed list of at most `max` items. */
export function* list<A>(what: string, max: number, item: () => Decoder<A>): Decoder<Array<A>> {
  const n = yield* u64(`the number of ${what}`)
  if (n > max) return yield* fail(new WireTooLarge({ what: `the number of ${what}`, length: String(n), max }))
  const out: Array<A> = []
  for (let i = 0; i < n; i++) out.push(yield* item())
  return out
}

export function* strings(what: string, maxItems: number = limits.listLength, maxLength: number = limits.shortString): Decoder<Array<string>> {
  const count = yield* u64(`the number of ${what}`)
  if (count > maxItems) return yield* fail(new WireTooLarge({ what: `the number of ${what}`, length: String(count), max: maxItems }))
  const out: Array<string> = []
  for (let i = 0; i < count; i++) out.push(text(yield* bytes(what, maxLength)))
  return out
}

/** Runs a decoder over bytes in memory: the value and how many bytes it used, or a typed error. */
export const decodeBytes = <A>(decoder: Decoder<A>, input: Uint8Array): Result.Result<{ readonly value: A; readonly used: number }, WireError> => {
  let offset = 0
  let step = decoder.next()
  while (!step.done) {
    const instr = step.value
    if (instr._tag === "Fail") return Result.fail(instr.error)
    const { n, what } = instr
    if (offset + n > input.length) {
      decoder.return(undefined as never)
      return Result.fail(new WireTruncated({ what }))
    }
    const view = input.subarray(offset, offset + n)
    offset += n
    step = decoder.next(view)
  }
  return Result.succeed({ value: step.value, used: offset })
}
