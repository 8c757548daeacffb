/**
 * The JSON form of derivations that `nix show-derivation` prints (Nix 2.8):
 *
 *   { "/nix/store/…-hello.drv": { "outputs": { "out": { "path": "…" } }, "inputSrcs": […],
 *     "inputDrvs": { "/nix/store/…-dep.drv": ["out"] }, "system": "…", "builder": "…",
 *     "args": […], "env": { … } } }
 *
 * Outputs carry `path` (input-addressed), `path`+`hashAlgo`+`hash` (fixed), `hashAlgo` (floating),
 * nothing (deferred) or `hashAlgo`+`impure: true`. `printShowDerivation` reproduces Nix's bytes
 * (2-space indentation, its string escaping, derivations sorted by path, final newline).
 */
import { Result } from "effect"
import * as ByteString from "../byte-string.ts"
import * as Hash from "../hash.ts"
import * as StorePath from "../store-path.ts"
import { InvalidDerivation } from "./errors.ts"
import * as Json from "./json-value.ts"
import { deferred, fixed, floating, impure, inputAddressed, methodAlgo, nameFromDrvPath, type Derivation, type DerivationOutput } from "./types.ts"
import { compareUtf8, sortedEntries, sortedUnique } from "./utf8-order.ts"

const outputJson = (output: DerivationOutput): Json.JsonValue => {
  switch (output._tag) {
    case "InputAddressed": return new Map([["path", output.path]])
    case "Fixed": return new Map([["path", output.path], ["hashAlgo", methodAlgo(output.method, output.hash.algorithm)], ["hash", Hash.encode(output.hash, "base16")]])
    case "Floating": return new Map([["hashAlgo", methodAlgo(output.method, output.algorithm)]])
    case "Deferred": return new Map()
    case "Impure": return new Map<string, Json.JsonValue>([["hashAlgo", methodAlgo(output.method, output.algorithm)], ["impure", true]])
  }
}

/** One derivation as a JSON object, keys in Nix's order. */
export const toJson = (drv: Derivation): Json.JsonValue => new Map<string, Json.JsonValue>([
  ["outputs", new Map(sortedEntries(drv.outputs).map(([name, o]) => [name, outputJson(o)]))],
  ["inputSrcs", sortedUnique(drv.inputSrcs)],
  ["inputDrvs", new Map(sortedEntries(drv.inputDrvs).map(([path, names]) => [path, sortedUnique(names)]))],
  ["system", drv.system],
  ["builder", drv.builder],
  ["args", [...drv.args]],
  ["env", new Map(sortedEntries(drv.env))]
])

/**
 * Exactly what `nix show-derivation` prints for these derivations; bytes that are not UTF-8 stay
 * escaped in the string (write `ByteString.encode` of it to get Nix's bytes).
 */
export const printShowDerivation = (drvs: Iterable<readonly [string, Derivation]>): string => {
  const byPath = new Map<string, Json.JsonValue>()
  for (const [path, drv] of [...drvs].sort(([a], [b]) => compareUtf8(a, b))) byPath.set(path, toJson(drv))
  return `${Json.printNix(byPath, { indent: true })}\n`
}

// ---------------------------------------------------------------------------------------------
// Reading the JSON form back

type Reader<A> = (value: Json.JsonValue, where: string) => Result.Result<A, string>

const str: Reader<string> = (v, where) => typeof v === "string" ? Result.succeed(v) : Result.fail(`${where} must be a string`)
const arrayOf = <A>(item: Reader<A>): Reader<Array<A>> => (v, where) => {
  if (!Json.isArray(v)) return Result.fail(`${where} must be a list`)
  const out: Array<A> = []
  for (const [i, x] of v.entries()) {
    const r = item(x, `${where}[${i}]`)
    if (Result.isFailure(r)) return Result.fail(r.failure)
    out.push(r.success)
  }
  return Result.succeed(out)
}
const mapOf = <A>(item: Reader<A>): Reader<Map<string, A>> => (v, where) => {
  if (!Json.isObject(v)) return Result.fail(`${where} must be an object`)
  const out = new Map<string, A>()
  for (const [k, x] of v) {
    const r = item(x, `${where}.${k}`)
    if (Result.isFailure(r)) return Result.fail(r.failure)
    out.set(k, r.success)
  }
  return Result.succeed(out)
}

const outputFromJson = (storeDir: string): Reader<DerivationOutput> => (v, where) => {
  if (!Json.isObject(v)) return Result.fail(`${where} must be an object`)
  const unknown = [...v.keys()].find((k) => !["path", "hashAlgo", "hash", "impure"].includes(k))
  if (unknown !== undefined) return Result.fail(`${where} has an unknown field '${unknown}'`)
  const path = v.get("path")
  const hashAlgo = v.get("hashAlgo")
  const hash = v.get("hash")
  const isImpure = v.get("impure")
  const checkPath = (p: Json.JsonValue | undefined): Result.Result<string, string> =>
    typeof p !== "string" ? Result.fail(`${where}.path must be a string`)
      : Result.mapError(Result.map(StorePath.parse(p, storeDir), () => p), (e) => e.message)
  if (hashAlgo === undefined) {
    if (hash !== undefined || isImpure !== undefined) return Result.fail(`${where} has a hash but no hashAlgo`)
    return path === undefined ? Result.succeed(deferred) : Result.map(checkPath(path), inputAddressed)
  }
  if (typeof hashAlgo !== "string") return Result.fail(`${where}.hashAlgo must be a string`)
  const method = hashAlgo.startsWith("r:") ? "recursive" as const : "flat" as const
  const algorithm = method === "recursive" ? hashAlgo.slice(2) : hashAlgo
  if (!Hash.isHashAlgorithm(algorithm)) return Result.fail(`${where}.hashAlgo: unknown hash algorithm '${algorithm}'`)
  if (isImpure !== undefined) {
    if (isImpure !== true || path !== undefined || hash !== undefined) return Result.fail(`${where}: an impure output has only hashAlgo and impure: true`)
    return Result.succeed(impure(method, algorithm))
  }
  if (hash === undefined) {
    if (path !== undefined) return Result.fail(`${where}: a floating content-addressed output cannot have a path`)
    return Result.succeed(floating(method, algorithm))
  }
  if (typeof hash !== "string") return Result.fail(`${where}.hash must be a string`)
  return Result.flatMap(checkPath(path), (p) =>
    Result.map(Result.mapError(Hash.decodeDigest(hash, hash, algorithm), (e) => e.message), (h) => fixed(p, method, h)))
}

const derivationFromJson = (v: Json.JsonValue, drvPath: string, storeDir: string): Result.Result<Derivation, string> => {
  if (!Json.isObject(v)) return Result.fail("a derivation must be a JSON object")
  const field = <A>(key: string, read: Reader<A>): Result.Result<A, string> => {
    const x = v.get(key)
    return x === undefined ? Result.fail(`missing field '${key}'`) : read(x, key)
  }
  const name = nameFromDrvPath(drvPath)
  const storePath: Reader<string> = (x, where) => Result.flatMap(str(x, where), (p) =>
    Result.mapError(Result.map(StorePath.parse(p, storeDir), () => p), (e) => e.message))
  return Result.gen(function*() {
    const outputs = yield* field("outputs", mapOf(outputFromJson(storeDir)))
    if (outputs.size === 0) return yield* Result.fail("a derivation must have at least one output")
    const inputSrcs = yield* field("inputSrcs", arrayOf(storePath))
    const inputDrvs = yield* field("inputDrvs", mapOf(arrayOf(str)))
    for (const path of inputDrvs.keys()) yield* storePath(path, "inputDrvs")
    const system = yield* field("system", str)
    const builder = yield* field("builder", str)
    const args = yield* field("args", arrayOf(str))
    const env = yield* field("env", mapOf(str))
    return { name, outputs, inputDrvs, inputSrcs, system, builder, args, env }
  })
}

/** Reads `nix show-derivation` output (its bytes, or a string as ../byte-string.ts decodes them): drv path → derivation. */
export const parseShowDerivation = (
  input: string | Uint8Array,
  options: { readonly storeDir?: string; readonly source?: string } = {}
): Result.Result<ReadonlyMap<string, Derivation>, InvalidDerivation> => {
  const storeDir = options.storeDir ?? StorePath.defaultStoreDir
  const source = options.source ?? "<json>"
  const json = Json.parse(typeof input === "string" ? input : ByteString.decode(input))
  if (Result.isFailure(json)) return Result.fail(new InvalidDerivation({ input: source, offset: json.failure.offset, reason: json.failure.reason }))
  if (!Json.isObject(json.success)) return Result.fail(new InvalidDerivation({ input: source, offset: 0, reason: "expected an object of derivations by path" }))
  const out = new Map<string, Derivation>()
  for (const [drvPath, value] of json.success) {
    const drv = derivationFromJson(value, drvPath, storeDir)
    if (Result.isFailure(drv)) return Result.fail(new InvalidDerivation({ input: drvPath, offset: -1, reason: drv.failure }))
    out.set(drvPath, drv.success)
  }
  return Result.succeed(out)
}
