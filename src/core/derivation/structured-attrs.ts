/**
 * Structured attributes (`__structuredAttrs = true`): the derivation keeps all attributes as JSON
 * in its `__json` environment variable, and the builder gets two files in its build directory,
 * written as Nix 2.8's `LocalDerivationGoal::writeStructuredAttrs` writes them:
 *
 * - `.attrs.json`: the `__json` object plus `"outputs": { <name>: <path> }`, dumped by nlohmann::json
 *   (compact, keys sorted, floats shortest with `.0`);
 * - `.attrs.sh`: `declare` lines for every attribute bash can represent (strings, integers, null,
 *   Booleans, and flat lists/objects of those), as `writeStructuredAttrsShell` writes them.
 *
 * In both, output placeholders (`hashPlaceholder(name)`) are replaced by the output paths.
 * `exportReferencesGraph` needs store queries: the builder computes it and passes it in `replace`.
 */
import { Result } from "effect"
import { InvalidDerivation } from "./errors.ts"
import * as Json from "./json-value.ts"
import { hashPlaceholder } from "./placeholders.ts"
import { outputPath, type Derivation } from "./types.ts"
import { compareUtf8, sortedEntries } from "./utf8-order.ts"

export interface StructuredAttrsFiles {
  /** Contents of `.attrs.json`. */
  readonly json: string
  /** Contents of `.attrs.sh`. */
  readonly shell: string
}

export interface StructuredAttrsOptions {
  /** The paths the outputs are built at; defaults to the paths recorded in the derivation. */
  readonly outputPaths?: ReadonlyMap<string, string>
  /** Values to put in place of attributes (the builder's `exportReferencesGraph` closures). */
  readonly replace?: ReadonlyMap<string, Json.JsonValue>
}

/** Nix's `shellEscape`: single quotes, with `'` written as `'\''`. */
export const shellEscape = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`

const shVarName = /^[A-Za-z_][A-Za-z0-9_]*$/

/** `static_cast<int>` as GCC on x86-64 does it: 64-bit integers wrap, out-of-range doubles become INT_MIN. */
const toInt32 = (v: bigint | number): string => {
  if (typeof v === "bigint") return BigInt.asIntN(32, v).toString()
  const t = Math.trunc(v)
  return t >= -2147483648 && t <= 2147483647 ? String(t === 0 ? 0 : t) : "-2147483648"
}

/** The bash form of a JSON scalar, or undefined if it has none (floats with a fraction, lists, objects). */
const simpleShellValue = (value: Json.JsonValue): string | undefined => {
  if (typeof value === "string") return shellEscape(value)
  if (typeof value === "bigint" || typeof value === "number") {
    // nlohmann: value.get<float>(), and if that is integral, std::to_string(value.get<int>()).
    const f = Math.fround(Number(value))
    return Math.ceil(f) === f ? toInt32(value) : undefined
  }
  if (value === null) return "''"
  if (typeof value === "boolean") return value ? "1" : ""
  return undefined
}

/** `writeStructuredAttrsShell`: `declare` lines for the attributes bash can hold. */
export const attrsShell = (json: ReadonlyMap<string, Json.JsonValue>): string => {
  let out = ""
  for (const [key, value] of sortedEntries(json)) {
    if (!shVarName.test(key)) continue
    const simple = simpleShellValue(value)
    if (simple !== undefined) { out += `declare ${key}=${simple}\n`; continue }
    if (Json.isArray(value)) {
      const items = value.map(simpleShellValue)
      if (items.every((s) => s !== undefined)) out += `declare -a ${key}=(${items.map((s) => `${s} `).join("")})\n`
    } else if (Json.isObject(value)) {
      const entries = sortedEntries(value).map(([k, v]) => [k, simpleShellValue(v)] as const)
      if (entries.every(([, s]) => s !== undefined)) out += `declare -A ${key}=(${entries.map(([k, s]) => `[${shellEscape(k)}]=${s} `).join("")})\n`
    }
  }
  return out
}

/** Nix's `rewriteStrings`: each replacement in turn, in key order. */
export const rewriteStrings = (s: string, rewrites: ReadonlyMap<string, string>): string => {
  let out = s
  for (const [from, to] of [...rewrites].sort(([a], [b]) => compareUtf8(a, b))) {
    if (from !== to && from !== "") out = out.split(from).join(to)
  }
  return out
}

/** The `.attrs.json` and `.attrs.sh` a builder of this derivation gets, or undefined without structured attrs. */
export const structuredAttrsFiles = (
  drv: Derivation,
  options: StructuredAttrsOptions = {}
): Result.Result<StructuredAttrsFiles | undefined, InvalidDerivation> => {
  const text = drv.env.get("__json")
  if (text === undefined) return Result.succeed(undefined)
  const fail = (reason: string) => Result.fail(new InvalidDerivation({ input: drv.name, offset: -1, reason }))
  const parsed = Json.parse(text)
  if (Result.isFailure(parsed)) return fail(`cannot process the __json attribute at offset ${parsed.failure.offset}: ${parsed.failure.reason}`)
  if (!Json.isObject(parsed.success)) return fail("the __json attribute is not a JSON object")
  const rewrites = new Map<string, string>()
  for (const [name, output] of drv.outputs) {
    const path = options.outputPaths?.get(name) ?? outputPath(output)
    if (path !== undefined) rewrites.set(hashPlaceholder(name), path)
  }
  const outputs = new Map<string, Json.JsonValue>(sortedEntries(drv.outputs).map(([name]) => [name, rewriteStrings(hashPlaceholder(name), rewrites)]))
  const json = new Map(parsed.success)
  json.set("outputs", outputs)
  for (const [key, value] of options.replace ?? []) json.set(key, value)
  return Result.succeed({ json: rewriteStrings(Json.printNlohmann(json), rewrites), shell: rewriteStrings(attrsShell(json), rewrites) })
}
