/**
 * Parses the ATerm form of `.drv` files. Total: any input gives a `Derivation` or an
 * `InvalidDerivation` with the byte offset where it went wrong. The format is flat (no nesting
 * beyond a fixed depth), so the parser is a single pass over the bytes with no recursion.
 *
 * It accepts everything Nix 2.8 writes and is stricter than Nix's reader where Nix is sloppy:
 * list items must be separated by exactly one comma, nothing may follow the closing `)`, store
 * paths must be valid and in `storeDir`, and names may not repeat. Strings are bytes, as in Nix:
 * bytes that are not UTF-8 are kept as escapes (../byte-string.ts), so printing gives them back.
 *
 * The reader records the first error and from then on every step is a no-op, so the parsing code
 * reads straight through and the error is checked once at the end.
 */
import { isUtf8 } from "node:buffer"
import { Result } from "effect"
import * as ByteString from "../byte-string.ts"
import * as Hash from "../hash.ts"
import * as StorePath from "../store-path.ts"
import { InvalidDerivation } from "./errors.ts"
import { deferred, fixed, floating, impure, inputAddressed, type Derivation, type DerivationOutput } from "./types.ts"

export interface ParseOptions {
  /** The derivation name (from its `.drv` path); defaults to the `name` environment variable. */
  readonly name?: string
  readonly storeDir?: string
  /** What to call the input in error messages (a file name); defaults to the name. */
  readonly source?: string
}


const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const CLOSE_BRACKET = 0x5d
const unescaped: Record<number, number> = { 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09 }

interface Failure {
  readonly offset: number
  readonly reason: string
}

class Reader {
  pos = 0
  error: Failure | undefined = undefined
  readonly bytes: Uint8Array
  readonly buffer: Buffer
  /** Whether the whole input is UTF-8, and so every string in it (quotes and escapes are ASCII). */
  readonly utf8: boolean
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
    this.buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
    this.utf8 = isUtf8(this.buffer)
  }

  get ok(): boolean { return this.error === undefined }

  fail(offset: number, reason: string): void {
    this.error ??= { offset, reason }
  }

  expect(literal: string): void {
    if (!this.ok) return
    for (let i = 0; i < literal.length; i++) {
      if (this.bytes[this.pos + i] !== literal.charCodeAt(i)) return this.fail(this.pos, `expected '${literal}'`)
    }
    this.pos += literal.length
  }

  /** After an item: `,` means another item follows (true), `]` ends the list (false). */
  more(): boolean {
    if (!this.ok) return false
    const c = this.bytes[this.pos]
    if (c === COMMA) { this.pos++; return true }
    if (c === CLOSE_BRACKET) { this.pos++; return false }
    this.fail(this.pos, "expected ',' or ']'")
    return false
  }

  /** The `[` was consumed: parses items until `]`. */
  list(item: () => void): void {
    if (!this.ok) return
    if (this.bytes[this.pos] === CLOSE_BRACKET) { this.pos++; return }
    do item(); while (this.more())
  }

  /** `("…","…",…)` with `n` strings. */
  tuple(n: number): Array<string> {
    const out: Array<string> = []
    this.expect("(")
    for (let i = 0; i < n; i++) {
      if (i > 0) this.expect(",")
      out.push(this.string())
    }
    this.expect(")")
    return out
  }

  string(): string {
    if (!this.ok) return ""
    const start = this.pos
    const bytes = this.bytes
    if (bytes[start] !== QUOTE) { this.fail(start, "expected '\"'"); return "" }
    // Find the closing quote; copy only if there are escapes.
    let i = start + 1
    let escapes = 0
    while (i < bytes.length && bytes[i] !== QUOTE) {
      if (bytes[i] === BACKSLASH) { escapes++; i++ }
      i++
    }
    if (i >= bytes.length) { this.fail(start, "unterminated string"); return "" }
    this.pos = i + 1
    if (escapes === 0) {
      return this.utf8 ? this.buffer.toString("utf8", start + 1, i) : ByteString.decode(bytes.subarray(start + 1, i))
    }
    const raw = bytes.subarray(start + 1, i)
    const out = Buffer.allocUnsafe(raw.length - escapes)
    let n = 0
    for (let j = 0; j < raw.length; j++) {
      const c = raw[j]!
      if (c === BACKSLASH) { const e = raw[++j]!; out[n++] = unescaped[e] ?? e } else out[n++] = c
    }
    return this.utf8 ? out.toString("utf8", 0, n) : ByteString.decode(out.subarray(0, n))
  }
}

const parseBytes = (bytes: Uint8Array, options: ParseOptions): Result.Result<Derivation, Failure> => {
  const storeDir = options.storeDir ?? StorePath.defaultStoreDir
  const r = new Reader(bytes)
  const outputs = new Map<string, DerivationOutput>()
  const inputDrvs = new Map<string, ReadonlyArray<string>>()
  const inputSrcs: Array<string> = []
  const args: Array<string> = []
  const env = new Map<string, string>()

  const storePath = (value: string, offset: number): string => {
    if (!r.ok) return value
    const parsed = StorePath.parse(value, storeDir)
    if (Result.isFailure(parsed)) r.fail(offset, parsed.failure.message)
    return value
  }

  const output = (path: string, hashAlgo: string, hash: string, at: number): DerivationOutput => {
    if (hashAlgo === "") {
      if (hash !== "") r.fail(at, "an output with a hash must name its hash algorithm")
      return path === "" ? deferred : inputAddressed(storePath(path, at))
    }
    const method = hashAlgo.startsWith("r:") ? "recursive" as const : "flat" as const
    const algorithm = method === "recursive" ? hashAlgo.slice(2) : hashAlgo
    if (!Hash.isHashAlgorithm(algorithm)) { r.fail(at, `unknown hash algorithm '${algorithm}'`); return deferred }
    if (hash === "" || hash === "impure") {
      if (path !== "") r.fail(at, `${hash === "" ? "a floating content-addressed" : "an impure"} output cannot have a path`)
      return hash === "" ? floating(method, algorithm) : impure(method, algorithm)
    }
    const parsed = Hash.decodeDigest(hash, hash, algorithm)
    if (Result.isFailure(parsed)) { r.fail(at, parsed.failure.message); return deferred }
    return fixed(storePath(path, at), method, parsed.success)
  }

  r.expect("Derive([")
  const outputsAt = r.pos
  r.list(() => {
    const at = r.pos
    const [name = "", path = "", hashAlgo = "", hash = ""] = r.tuple(4)
    if (!r.ok) return
    if (name === "") r.fail(at, "an output name is empty")
    else if (outputs.has(name)) r.fail(at, `output '${name}' appears twice`)
    else outputs.set(name, output(path, hashAlgo, hash, at))
  })
  if (r.ok && outputs.size === 0) r.fail(outputsAt, "a derivation must have at least one output")
  r.expect(",[")
  r.list(() => {
    const at = r.pos
    r.expect("(")
    const path = storePath(r.string(), at)
    r.expect(",[")
    const names: Array<string> = []
    r.list(() => { names.push(r.string()) })
    r.expect(")")
    if (r.ok && inputDrvs.has(path)) r.fail(at, `input derivation '${path}' appears twice`)
    inputDrvs.set(path, names)
  })
  r.expect(",[")
  r.list(() => {
    const at = r.pos
    inputSrcs.push(storePath(r.string(), at))
  })
  r.expect(",")
  const system = r.string()
  r.expect(",")
  const builder = r.string()
  r.expect(",[")
  r.list(() => { args.push(r.string()) })
  r.expect(",[")
  r.list(() => {
    const at = r.pos
    const [name = "", value = ""] = r.tuple(2)
    if (r.ok && env.has(name)) r.fail(at, `environment variable '${name}' appears twice`)
    env.set(name, value)
  })
  r.expect(")")
  if (r.ok && r.pos !== bytes.length) r.fail(r.pos, "unexpected data after the end of the derivation")
  if (r.error !== undefined) return Result.fail(r.error)
  return Result.succeed({ name: options.name ?? env.get("name") ?? "", outputs, inputDrvs, inputSrcs, system, builder, args, env })
}

/** Parses a `.drv` file's contents (bytes, or a string standing for its bytes as ../byte-string.ts encodes them). */
export const parse = (input: Uint8Array | string, options: ParseOptions = {}): Result.Result<Derivation, InvalidDerivation> => {
  const bytes = typeof input === "string" ? ByteString.encode(input) : input
  return Result.mapError(parseBytes(bytes, options), (f) =>
    new InvalidDerivation({ input: options.source ?? options.name ?? "<derivation>", offset: f.offset, reason: f.reason }))
}
