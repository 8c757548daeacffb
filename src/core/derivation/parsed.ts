/**
 * The attributes of a derivation that tell the builder how to build it, read as Nix 2.8's
 * `ParsedDerivation` reads them: from the `__json` object with structured attributes, else from
 * the environment (strings as they are, Booleans as `"1"`, lists split on whitespace).
 *
 * `requiredSystemFeatures`, `preferLocalBuild`, `allowSubstitutes`, `passAsFile`, `impureEnvVars`,
 * `exportReferencesGraph` and the output checks (`allowedReferences`, `allowedRequisites`,
 * `disallowedReferences`, `disallowedRequisites`; with structured attributes `outputChecks.<output>`
 * with those and `maxSize`, `maxClosureSize`). Errors are worded as Nix words them.
 */
import { Result, Schema } from "effect"
import { derivationType } from "./derivation-type.ts"
import * as Json from "./json-value.ts"
import type { Derivation } from "./types.ts"

/** An attribute Nix would refuse (wrong type, malformed value). */
export class InvalidDerivationAttribute extends Schema.TaggedError<InvalidDerivationAttribute>()("InvalidDerivationAttribute", {
  drvPath: Schema.String,
  reason: Schema.String
}) {
  override get message() { return this.reason }
}

type Ok<A> = Result.Result<A, InvalidDerivationAttribute>

/** Nix's `tokenizeString` with the default separators (space, tab, newline, CR). */
export const tokenize = (s: string): Array<string> => s.split(/[ \t\n\r]+/).filter((t) => t !== "")

export interface OutputChecks {
  /** Self-references do not count against the requisites checks (always in the legacy form; never with structured attributes in 2.8). */
  readonly ignoreSelfRefs: boolean
  readonly maxSize?: bigint
  readonly maxClosureSize?: bigint
  readonly allowedReferences?: ReadonlyArray<string>
  readonly allowedRequisites?: ReadonlyArray<string>
  readonly disallowedReferences?: ReadonlyArray<string>
  readonly disallowedRequisites?: ReadonlyArray<string>
}

export interface ParsedDerivation {
  readonly drv: Derivation
  /** The `.drv` store path. */
  readonly drvPath: string
  /** The `.drv` base name, as Nix names the derivation in most of these errors. */
  readonly drvName: string
  /** The `__json` object, with structured attributes. */
  readonly structuredAttrs: ReadonlyMap<string, Json.JsonValue> | undefined
  readonly getString: (name: string) => Ok<string | undefined>
  readonly getBool: (name: string, def: boolean) => Ok<boolean>
  readonly getStrings: (name: string) => Ok<ReadonlyArray<string> | undefined>
}

/** `ParsedDerivation` of the derivation at `drvPath` (a `.drv` store path). */
export const parseDerivation = (drv: Derivation, drvPath: string): Ok<ParsedDerivation> => {
  const drvBaseName = drvPath.slice(drvPath.lastIndexOf("/") + 1)
  const fail = (reason: string) => Result.fail(new InvalidDerivationAttribute({ drvPath: drvBaseName, reason }))
  const json = drv.env.get("__json")
  let structuredAttrs: ReadonlyMap<string, Json.JsonValue> | undefined
  if (json !== undefined) {
    const parsed = Json.parse(json)
    if (Result.isFailure(parsed)) return fail(`cannot process __json attribute of '${drvBaseName}': ${parsed.failure.reason} at ${parsed.failure.offset}`)
    if (!Json.isObject(parsed.success)) return fail(`cannot process __json attribute of '${drvBaseName}': it is not a JSON object`)
    structuredAttrs = parsed.success
  }
  const attr = (name: string, kind: string) => fail(`attribute '${name}' of derivation '${drvBaseName}' must be ${kind}`)
  const getString = (name: string): Ok<string | undefined> => {
    if (structuredAttrs === undefined) return Result.succeed(drv.env.get(name))
    const v = structuredAttrs.get(name)
    if (v === undefined) return Result.succeed(undefined)
    return typeof v === "string" ? Result.succeed(v) : attr(name, "a string")
  }
  const getBool = (name: string, def: boolean): Ok<boolean> => {
    if (structuredAttrs === undefined) {
      const v = drv.env.get(name)
      return Result.succeed(v === undefined ? def : v === "1")
    }
    const v = structuredAttrs.get(name)
    if (v === undefined) return Result.succeed(def)
    return typeof v === "boolean" ? Result.succeed(v) : attr(name, "a Boolean")
  }
  const getStrings = (name: string): Ok<ReadonlyArray<string> | undefined> => {
    if (structuredAttrs === undefined) {
      const v = drv.env.get(name)
      return Result.succeed(v === undefined ? undefined : tokenize(v))
    }
    const v = structuredAttrs.get(name)
    if (v === undefined) return Result.succeed(undefined)
    if (!Json.isArray(v) || v.some((x) => typeof x !== "string")) return attr(name, "a list of strings")
    return Result.succeed(v as ReadonlyArray<string>)
  }
  return Result.succeed({ drv, drvPath, drvName: drvBaseName, structuredAttrs, getString, getBool, getStrings })
}

/** `getRequiredSystemFeatures`: the attribute, plus `ca-derivations` for outputs not known in advance. */
export const requiredSystemFeatures = (p: ParsedDerivation): Ok<ReadonlyArray<string>> =>
  Result.map(p.getStrings("requiredSystemFeatures"), (list) => {
    const features = new Set(list ?? [])
    const type = derivationType(p.drv)
    const known = Result.isSuccess(type) && (type.success === "InputAddressed" || type.success === "Fixed")
    if (!known) features.add("ca-derivations")
    return [...features].sort()
  })

export const preferLocalBuild = (p: ParsedDerivation): Ok<boolean> => p.getBool("preferLocalBuild", false)
export const substitutesAllowed = (p: ParsedDerivation): Ok<boolean> => p.getBool("allowSubstitutes", true)

/** `passAsFile` (ignored with structured attributes, as in Nix). */
export const passAsFile = (p: ParsedDerivation): ReadonlySet<string> =>
  p.structuredAttrs !== undefined ? new Set() : new Set(tokenize(p.drv.env.get("passAsFile") ?? ""))

/** `impureEnvVars`: the variables a fixed-output derivation's builder gets from b3's environment. */
export const impureEnvVars = (p: ParsedDerivation): Ok<ReadonlyArray<string>> => Result.map(p.getStrings("impureEnvVars"), (v) => v ?? [])

/** `exportReferencesGraph`: file (or, with structured attributes, JSON key) → the store paths whose closures to export. */
export const exportReferencesGraph = (p: ParsedDerivation): Ok<ReadonlyArray<{ readonly name: string; readonly paths: ReadonlyArray<string> }>> => {
  const fail = (reason: string) => Result.fail(new InvalidDerivationAttribute({ drvPath: p.drvName, reason }))
  if (p.structuredAttrs !== undefined) {
    const e = p.structuredAttrs.get("exportReferencesGraph")
    if (e === undefined || !Json.isObject(e)) return Result.succeed([])
    const out: Array<{ name: string; paths: Array<string> }> = []
    for (const [name, v] of e) {
      // nlohmann iterates an array's elements, a string as itself, and throws on non-strings.
      const items = Json.isArray(v) ? v : [v]
      if (items.some((x) => typeof x !== "string")) return fail(`[json.exception.type_error.302] type must be string, but is ${Json.isArray(v) ? "array" : typeof v}`)
      out.push({ name, paths: items as Array<string> })
    }
    return Result.succeed(out)
  }
  const s = p.drv.env.get("exportReferencesGraph") ?? ""
  const tokens = tokenize(s)
  if (tokens.length % 2 !== 0) return fail(`odd number of tokens in 'exportReferencesGraph': '${s}'`)
  const out: Array<{ name: string; paths: Array<string> }> = []
  for (let i = 0; i < tokens.length; i += 2) {
    const name = tokens[i]!
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) return fail(`invalid file name '${name}' in 'exportReferencesGraph'`)
    out.push({ name, paths: [tokens[i + 1]!] })
  }
  return Result.succeed(out)
}

/** The checks Nix 2.8 applies to one output after the build (`LocalDerivationGoal::checkOutputs`). */
export const outputChecks = (p: ParsedDerivation, outputName: string): Ok<OutputChecks | undefined> => {
  const fail = (reason: string) => Result.fail(new InvalidDerivationAttribute({ drvPath: p.drvName, reason }))
  if (p.structuredAttrs === undefined) {
    return Result.gen(function*() {
      const allowedReferences = yield* p.getStrings("allowedReferences")
      const allowedRequisites = yield* p.getStrings("allowedRequisites")
      const disallowedReferences = yield* p.getStrings("disallowedReferences")
      const disallowedRequisites = yield* p.getStrings("disallowedRequisites")
      return {
        ignoreSelfRefs: true,
        ...(allowedReferences !== undefined ? { allowedReferences } : {}),
        ...(allowedRequisites !== undefined ? { allowedRequisites } : {}),
        ...(disallowedReferences !== undefined ? { disallowedReferences } : {}),
        ...(disallowedRequisites !== undefined ? { disallowedRequisites } : {})
      }
    })
  }
  const all = p.structuredAttrs.get("outputChecks")
  if (all === undefined || !Json.isObject(all)) return Result.succeed(undefined)
  const spec = all.get(outputName)
  if (spec === undefined || !Json.isObject(spec)) return Result.succeed(undefined)
  const size = (name: string): Result.Result<bigint | undefined, InvalidDerivationAttribute> => {
    const v = spec.get(name)
    if (v === undefined) return Result.succeed(undefined)
    if (typeof v === "bigint" && v >= 0n) return Result.succeed(v)
    if (typeof v === "number" && v >= 0) return Result.succeed(BigInt(Math.trunc(v)))
    return fail(`[json.exception.type_error.302] type must be number, but is ${typeof v === "bigint" || typeof v === "number" ? "number" : Json.isArray(v) ? "array" : v === null ? "null" : typeof v}`)
  }
  const list = (name: string): Result.Result<ReadonlyArray<string> | undefined, InvalidDerivationAttribute> => {
    const v = spec.get(name)
    if (v === undefined) return Result.succeed(undefined)
    const items = Json.isArray(v) ? v : Json.isObject(v) ? [...v.values()] : [v]
    if (items.some((x) => typeof x !== "string")) return fail(`attribute '${name}' of derivation '${p.drvPath}' must be a list of strings`)
    return Result.succeed(items as Array<string>)
  }
  return Result.gen(function*() {
    const maxSize = yield* size("maxSize")
    const maxClosureSize = yield* size("maxClosureSize")
    const allowedReferences = yield* list("allowedReferences")
    const allowedRequisites = yield* list("allowedRequisites")
    const disallowedReferences = yield* list("disallowedReferences")
    const disallowedRequisites = yield* list("disallowedRequisites")
    return {
      // Nix 2.8 does not read `ignoreSelfRefs` from outputChecks: self-references always count here.
      ignoreSelfRefs: false,
      ...(maxSize !== undefined ? { maxSize } : {}),
      ...(maxClosureSize !== undefined ? { maxClosureSize } : {}),
      ...(allowedReferences !== undefined ? { allowedReferences } : {}),
      ...(allowedRequisites !== undefined ? { allowedRequisites } : {}),
      ...(disallowedReferences !== undefined ? { disallowedReferences } : {}),
      ...(disallowedRequisites !== undefined ? { disallowedRequisites } : {})
    }
  })
}
