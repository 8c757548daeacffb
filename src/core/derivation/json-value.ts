/**
 * JSON values with the distinctions Nix and nlohmann::json make and JavaScript's JSON does not:
 * integers (`bigint`, exact to 64 bits) versus floats (`number`), and objects as maps (any key,
 * printed in UTF-8 byte order). Parsing and printing are iterative, so nesting depth is bounded
 * only by memory, never by the call stack.
 *
 * Two printers: `printNlohmann` is nlohmann's `dump()` (what Nix writes to `.attrs.json`), and
 * `printNix` is Nix's own JSONWriter (the `__json` attribute of structured-attrs derivations,
 * compact, and `nix show-derivation`, indented).
 */
import { Result } from "effect"
import { formatNlohmann, formatShortest6 } from "./number-format.ts"
import { compareUtf8 } from "./utf8-order.ts"

export type JsonValue =
  | null
  | boolean
  | string
  /** An integer. */
  | bigint
  /** A float. */
  | number
  | ReadonlyArray<JsonValue>
  | ReadonlyMap<string, JsonValue>

export const isObject = (v: JsonValue): v is ReadonlyMap<string, JsonValue> => v instanceof Map
export const isArray = (v: JsonValue): v is ReadonlyArray<JsonValue> => Array.isArray(v)

// ---------------------------------------------------------------------------------------------
// Parsing (nlohmann's rules: integers that fit 64 bits stay integers, UTF-8 must be well formed)

export interface JsonSyntaxError {
  readonly offset: number
  readonly reason: string
}

const int64Min = -(2n ** 63n)
const uint64Max = 2n ** 64n - 1n
const numberRe = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y
const simpleEscapes: Record<string, string> = { "\"": "\"", "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }

type Frame =
  | { readonly kind: "array"; readonly items: Array<JsonValue> }
  | { readonly kind: "object"; readonly entries: Map<string, JsonValue>; key: string }

export const parse = (text: string): Result.Result<JsonValue, JsonSyntaxError> => {
  let pos = 0
  let error: JsonSyntaxError | undefined
  const fail = (reason: string, at = pos) => { error ??= { offset: at, reason } }
  const skipSpace = () => {
    for (;;) {
      const c = text.charCodeAt(pos)
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) pos++
      else return
    }
  }
  const readString = (): string => {
    const start = pos
    pos++ // the opening quote
    let out = ""
    let chunk = pos
    for (;;) {
      if (pos >= text.length) { fail("unterminated string", start); return "" }
      const c = text.charCodeAt(pos)
      if (c === 0x22) { out += text.slice(chunk, pos); pos++; return out }
      if (c < 0x20) { fail("control character in a string"); return "" }
      if (c >= 0xd800 && c <= 0xdfff) {
        const pair = c <= 0xdbff && (text.charCodeAt(pos + 1) & 0xfc00) === 0xdc00
        // A lone U+DC80–U+DCFF is a byte that is not UTF-8 (../byte-string.ts): Nix strings are bytes.
        if (!pair && !(c >= 0xdc80 && c <= 0xdcff)) { fail("ill-formed UTF-16 in a string"); return "" }
        pos += pair ? 2 : 1
        continue
      }
      if (c !== 0x5c) { pos++; continue }
      out += text.slice(chunk, pos)
      const e = text[pos + 1]
      if (e !== undefined && e in simpleEscapes) { out += simpleEscapes[e]; pos += 2 }
      else if (e === "u") {
        const unit = (at: number) => /^[0-9a-fA-F]{4}$/.test(text.slice(at, at + 4)) ? parseInt(text.slice(at, at + 4), 16) : -1
        const u = unit(pos + 2)
        if (u < 0) { fail("bad \\u escape"); return "" }
        pos += 6
        if (u >= 0xd800 && u <= 0xdbff) {
          const low = text.startsWith("\\u", pos) ? unit(pos + 2) : -1
          if (low < 0xdc00 || low > 0xdfff) { fail("unpaired surrogate in a \\u escape"); return "" }
          out += String.fromCharCode(u, low)
          pos += 6
        } else if (u >= 0xdc00 && u <= 0xdfff) { fail("unpaired surrogate in a \\u escape"); return "" }
        else out += String.fromCharCode(u)
      } else { fail("bad escape in a string"); return "" }
      chunk = pos
    }
  }
  const readScalar = (): JsonValue => {
    const c = text[pos]
    if (c === "\"") return readString()
    for (const [word, value] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, pos)) { pos += word.length; return value }
    }
    numberRe.lastIndex = pos
    const m = numberRe.exec(text)
    if (m === null) { fail("expected a JSON value"); return null }
    pos += m[0].length
    if (m[1] === undefined && m[2] === undefined) {
      const n = BigInt(m[0])
      if (n >= int64Min && n <= uint64Max) return n
    }
    const f = Number(m[0])
    if (!Number.isFinite(f)) { fail("number out of range", pos - m[0].length); return null }
    return f
  }

  const stack: Array<Frame> = []
  let result: JsonValue = null
  // Each turn either opens a container, reads a scalar, or closes a container; then attaches the value.
  for (;;) {
    skipSpace()
    let value: JsonValue
    let complete = true
    const c = text[pos]
    if (c === "[") {
      pos++
      skipSpace()
      if (text[pos] === "]") { pos++; value = [] }
      else { stack.push({ kind: "array", items: [] }); complete = false; value = null }
    } else if (c === "{") {
      pos++
      skipSpace()
      if (text[pos] === "}") { pos++; value = new Map() }
      else {
        if (text[pos] !== "\"") { fail("expected a string key"); break }
        const key = readString()
        skipSpace()
        if (text[pos] !== ":") { fail("expected ':'"); break }
        pos++
        stack.push({ kind: "object", entries: new Map(), key })
        complete = false
        value = null
      }
    } else {
      value = readScalar()
    }
    if (error !== undefined) break
    if (!complete) continue
    // Attach the value, closing as many containers as end here.
    for (;;) {
      const frame = stack[stack.length - 1]
      if (frame === undefined) { result = value; break }
      if (frame.kind === "array") frame.items.push(value)
      else frame.entries.set(frame.key, value)
      skipSpace()
      const d = text[pos]
      if (d === ",") {
        pos++
        if (frame.kind === "object") {
          skipSpace()
          if (text[pos] !== "\"") { fail("expected a string key"); break }
          frame.key = readString()
          skipSpace()
          if (text[pos] !== ":") { fail("expected ':'"); break }
          pos++
        }
        break
      }
      if (d === (frame.kind === "array" ? "]" : "}")) {
        pos++
        stack.pop()
        value = frame.kind === "array" ? frame.items : frame.entries
        continue
      }
      fail(`expected ',' or '${frame.kind === "array" ? "]" : "}"}'`)
      break
    }
    if (error !== undefined || stack.length === 0) break
  }
  if (error === undefined) {
    skipSpace()
    if (pos !== text.length) fail("unexpected data after the JSON value")
  }
  return error === undefined ? Result.succeed(result) : Result.fail(error)
}

// ---------------------------------------------------------------------------------------------
// Printing

interface Style {
  readonly indent: boolean
  readonly float: (x: number) => string
  readonly string: (s: string) => string
  readonly sortKeys: boolean
}

const hex4 = (c: number) => `\\u${c.toString(16).padStart(4, "0")}`

/** Nix's `toJSON(std::string)`: `"`, `\`, newline, CR and tab by name, other control characters as \u00XX. */
export const quoteNix = (s: string): string =>
  `"${s.replace(/["\\\u0000-\u001f]/g, (c) => c === "\"" ? "\\\"" : c === "\\" ? "\\\\" : c === "\n" ? "\\n" : c === "\r" ? "\\r" : c === "\t" ? "\\t" : hex4(c.charCodeAt(0)))}"`

const nlohmannNamed: Record<string, string> = { "\"": "\\\"", "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t" }
/** nlohmann's `dump()` of a string (ensure_ascii off): named escapes for \b \f \n \r \t, \u00xx for other controls. */
export const quoteNlohmann = (s: string): string =>
  `"${s.replace(/["\\\u0000-\u001f]/g, (c) => nlohmannNamed[c] ?? hex4(c.charCodeAt(0)))}"`

const render = (root: JsonValue, style: Style): string => {
  const out: Array<string> = []
  // A stack of pending work: either text to emit or a value (with its depth) to print.
  const work: Array<string | { readonly value: JsonValue; readonly depth: number }> = [{ value: root, depth: 0 }]
  const newline = (depth: number) => style.indent ? `\n${"  ".repeat(depth)}` : ""
  while (work.length > 0) {
    const item = work.pop()!
    if (typeof item === "string") { out.push(item); continue }
    const { value, depth } = item
    if (value === null) out.push("null")
    else if (typeof value === "boolean") out.push(value ? "true" : "false")
    else if (typeof value === "string") out.push(style.string(value))
    else if (typeof value === "bigint") out.push(value.toString())
    else if (typeof value === "number") out.push(style.float(value))
    else if (isArray(value)) {
      const pending: Array<string | { value: JsonValue; depth: number }> = ["["]
      value.forEach((v, i) => { pending.push(`${i > 0 ? "," : ""}${newline(depth + 1)}`, { value: v, depth: depth + 1 }) })
      pending.push(`${value.length > 0 ? newline(depth) : ""}]`)
      for (let i = pending.length - 1; i >= 0; i--) work.push(pending[i]!)
    } else {
      const entries = [...(value as ReadonlyMap<string, JsonValue>).entries()]
      if (style.sortKeys) entries.sort(([a], [b]) => compareUtf8(a, b))
      const pending: Array<string | { value: JsonValue; depth: number }> = ["{"]
      entries.forEach(([k, v], i) => {
        pending.push(`${i > 0 ? "," : ""}${newline(depth + 1)}${style.string(k)}:${style.indent ? " " : ""}`, { value: v, depth: depth + 1 })
      })
      pending.push(`${entries.length > 0 ? newline(depth) : ""}}`)
      for (let i = pending.length - 1; i >= 0; i--) work.push(pending[i]!)
    }
  }
  return out.join("")
}

/** nlohmann::json `dump()`: compact, keys sorted bytewise, floats shortest with `.0`. */
export const printNlohmann = (value: JsonValue): string =>
  render(value, { indent: false, float: formatNlohmann, string: quoteNlohmann, sortKeys: true })

/** Nix's JSONWriter: keys in the map's order, floats as `%g`; indented (2 spaces) or compact. */
export const printNix = (value: JsonValue, options: { readonly indent?: boolean } = {}): string =>
  render(value, { indent: options.indent ?? false, float: formatShortest6, string: quoteNix, sortKeys: false })
