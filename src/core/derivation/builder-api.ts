/**
 * Declaring derivations in TypeScript, the way Nix's `derivation` builtin does (`derivationStrict`
 * in Nix 2.8), without the Nix language. The result is byte for byte what `nix-instantiate` writes:
 * the same `.drv` text, the same `.drv` path, the same output paths.
 *
 * ```ts
 * import { Result } from "effect"
 * import { derivation, storePath, str } from "./builder-api.ts"
 *
 * const sh = storePath("/nix/store/b8zzzm23p9pd6h8zbaiz806gqid7q81v-bb")   // an input already in the store
 * const lib = Result.getOrThrow(derivation({
 *   name: "greeting-lib", system: "x86_64-linux",
 *   builder: str`${sh}/bin/sh`, args: ["-c", "echo hi > $out; mkdir $dev"],
 *   outputs: ["out", "dev"]
 * }))
 * const app = Result.getOrThrow(derivation({
 *   name: "app", system: "x86_64-linux",
 *   builder: str`${sh}/bin/sh`,
 *   args: ["-c", str`cat ${lib.outputs.out} > $out`],   // depends on lib's "out" output
 *   headers: lib.outputs.dev,                          // … and on its "dev" output
 *   flags: ["-O2", 3, true],                           // "-O2 3 1"
 *   enableDebug: false                                 // ""
 * }))
 * app.drvPath             // "/nix/store/…-app.drv"
 * app.outputPaths.out     // "/nix/store/…-app"
 * app.aterm               // the .drv file's contents
 * ```
 *
 * Attribute rules (as Nix): every attribute except `args`, `__ignoreNulls`, `__contentAddressed` and
 * `__impure` goes into the environment (or, with `__structuredAttrs: true`, into the `__json` JSON);
 * `outputs` names the outputs (default `["out"]`); `outputHash` (+ `outputHashAlgo`, `outputHashMode`
 * `"flat"`|`"recursive"`) makes a fixed-output derivation; `__contentAddressed: true` makes a floating
 * content-addressed one, whose output paths are known only after building (references to its outputs
 * are placeholders). `null` is `""` unless `__ignoreNulls: true`, which drops the attribute.
 * `drvPath(dep)` is `dep.drvPath` with Nix's whole-closure context: every path in the closure of
 * the `.drv` becomes an input source, and every derivation in it an input with all its outputs.
 */
import { Result } from "effect"
import * as Hash from "../hash.ts"
import * as StorePath from "../store-path.ts"
import { print } from "./aterm-print.ts"
import { InvalidDerivationArgs } from "./errors.ts"
import { hashDerivationModulo, type DrvHash } from "./hash-modulo.ts"
import * as Json from "./json-value.ts"
import { downstreamPlaceholder, hashPlaceholder } from "./placeholders.ts"
import { deferred, drvExtension, fixed, floating, impure, inputAddressed, outputPath, type Derivation, type DerivationOutput } from "./types.ts"
import { compareUtf8 } from "./utf8-order.ts"
import {
  brand, coerceToString, ContextBuilder, isReference, outputRef, referenceString, toJson,
  type DerivationHandle, type DerivationLike, type OutputRef, type StringLike, type Value
} from "./values.ts"

export { drvPath, float, storePath, str } from "./values.ts"
export type { ContextString, DrvPathRef, FloatValue, OutputRef, StorePathRef, StringLike, Value } from "./values.ts"

export interface DerivationAttrs {
  /** The derivation name: the name part of its output paths. */
  readonly name: string
  /** The platform to build on, e.g. `x86_64-linux`. */
  readonly system: StringLike
  /** The program to run (usually a store path, so use `str` or a reference). */
  readonly builder: StringLike
  /** Its command-line arguments. */
  readonly args?: ReadonlyArray<Value>
  /** Output names (default `["out"]`); the first is the default output. */
  readonly outputs?: ReadonlyArray<string>
  /** Fixed-output: the expected hash (`sha256:…`, SRI, or bare with `outputHashAlgo`). */
  readonly outputHash?: string
  readonly outputHashAlgo?: string
  readonly outputHashMode?: "flat" | "recursive"
  /** Pass attributes as JSON (`.attrs.json`/`.attrs.sh`) instead of environment variables. */
  readonly __structuredAttrs?: boolean
  /** Drop attributes whose value is `null` instead of passing `""`. */
  readonly __ignoreNulls?: boolean
  /** Floating content-addressed outputs (Nix's `ca-derivations` experimental feature). */
  readonly __contentAddressed?: boolean
  /** An impure derivation (Nix's `impure-derivations` experimental feature). */
  readonly __impure?: boolean
  /** Any other attribute: passed to the builder. */
  readonly [attribute: string]: Value | undefined
}

export interface DerivationOptions {
  readonly storeDir?: string
}

/** A derivation made by `derivation(…)` (or loaded with `fromDerivation`). */
export interface BuiltDerivation extends DerivationLike, DerivationHandle {
  readonly name: string
  readonly drvPath: string
  /** Output name → a reference to use in other derivations' attributes. */
  readonly outputs: Readonly<Record<string, OutputRef>>
  /** Output name → path (a placeholder for outputs known only after building). */
  readonly outputPaths: Readonly<Record<string, string>>
  /** Output names in declaration order; the first is the default output. */
  readonly outputNames: ReadonlyArray<string>
  readonly derivation: Derivation
  /** The `.drv` file's contents. */
  readonly aterm: string
  /** Its (unmasked) hashDerivationModulo, which dependents use. */
  readonly drvHash: DrvHash
  /** The derivations it takes outputs from. */
  readonly inputs: ReadonlyArray<DerivationHandle>
  /** The default output's path. */
  toString(): string
}

const hashModes = { flat: "flat", recursive: "recursive" } as const

type Ok<A> = Result.Result<A, InvalidDerivationArgs>

const makeBuilt = (
  drvPath: string,
  drv: Derivation,
  aterm: string,
  drvHash: DrvHash,
  outputNames: ReadonlyArray<string>,
  inputs: ReadonlyArray<DerivationHandle> | undefined,
  sourceClosure: ReadonlyArray<string> | undefined
): BuiltDerivation => {
  const handle: DerivationHandle = {
    drvPath, drvHash, aterm, derivation: drv,
    ...(inputs !== undefined ? { inputs } : {}),
    ...(sourceClosure !== undefined ? { sourceClosure } : {})
  }
  const outputPaths: Record<string, string> = {}
  const outputs: Record<string, OutputRef> = {}
  for (const name of outputNames) {
    const known = outputPath(drv.outputs.get(name)!)
    const path = known ?? downstreamPlaceholder(drvPath, name)
    Object.defineProperty(outputPaths, name, { value: path, enumerable: true })
    Object.defineProperty(outputs, name, { value: outputRef(handle, name, path), enumerable: true })
  }
  const defaultPath = outputPaths[outputNames[0]!]!
  return {
    [brand]: "Derivation", name: drv.name, drvPath, outputs, outputPaths, outputNames, derivation: drv, aterm, drvHash, inputs: inputs ?? [],
    ...(sourceClosure !== undefined ? { sourceClosure } : {}),
    toString: () => defaultPath
  }
}

/**
 * The closure of a `.drv` (Nix's `computeFSClosure` of it): every derivation reachable through
 * input derivations, and every input source of those with the paths the sources refer to.
 */
const drvClosure = (root: DerivationHandle): Result.Result<{ readonly drvs: ReadonlyArray<DerivationHandle>; readonly srcs: ReadonlySet<string> }, string> => {
  const drvs = new Map<string, DerivationHandle>()
  const srcs = new Set<string>()
  const stack = [root]
  while (stack.length > 0) {
    const h = stack.pop()!
    if (drvs.has(h.drvPath)) continue
    drvs.set(h.drvPath, h)
    const drv = h.derivation
    if (drv === undefined) return Result.fail(`the contents of '${h.drvPath}' are not known here`)
    for (const s of h.sourceClosure ?? drv.inputSrcs) srcs.add(s)
    const known = new Map((h.inputs ?? []).map((i) => [i.drvPath, i]))
    for (const p of drv.inputDrvs.keys()) {
      const input = known.get(p)
      if (input === undefined) return Result.fail(`the input derivation '${p}' of '${h.drvPath}' is not known here (load it with its inputs)`)
      stack.push(input)
    }
  }
  for (const s of srcs) {
    if (s.endsWith(drvExtension) && !drvs.has(s)) return Result.fail(`the closure of '${root.drvPath}' holds the derivation '${s}' as a plain source, whose outputs are not known here`)
  }
  return Result.succeed({ drvs: [...drvs.values()], srcs })
}

/** Builds a derivation from attributes; see the module documentation. */
export const derivation = (attrs: DerivationAttrs, options: DerivationOptions = {}): Ok<BuiltDerivation> => {
  const storeDir = options.storeDir ?? StorePath.defaultStoreDir
  const name = attrs.name
  const fail = (attribute: string, reason: string): Ok<never> => Result.fail(new InvalidDerivationArgs({ name: String(name), attribute, reason }))
  if (typeof name !== "string") return fail("name", "the name must be a string")
  const validName = StorePath.validateName(name + drvExtension)
  if (Result.isFailure(validName)) return fail("name", validName.failure.reason)
  if (name.endsWith(drvExtension)) return fail("name", `derivation names are not allowed to end in '${drvExtension}'`)

  const bool = (key: string): Ok<boolean> => {
    const v = attrs[key]
    if (v === undefined) return Result.succeed(false)
    return typeof v === "boolean" ? Result.succeed(v) : fail(key, "must be a Boolean")
  }
  return Result.gen(function*() {
    const structured = yield* bool("__structuredAttrs")
    const ignoreNulls = yield* bool("__ignoreNulls")
    const contentAddressed = yield* bool("__contentAddressed")
    const isImpure = yield* bool("__impure")
    if (contentAddressed && isImpure) return yield* fail("", "a derivation cannot be both content-addressed and impure")

    const ctx = new ContextBuilder()
    const env = new Map<string, string>()
    const json = new Map<string, Json.JsonValue>()
    const args: Array<string> = []
    let builder = ""
    let system = ""
    let outputHash: string | undefined
    let outputHashAlgo = ""
    let hashMode: "flat" | "recursive" | undefined
    let outputNames: ReadonlyArray<string> = ["out"]

    const plainString = (key: string, v: Value): Ok<string> => {
      if (typeof v === "string") return Result.succeed(v)
      if (isReference(v)) {
        const own = new ContextBuilder()
        const s = referenceString(v, own)
        return own.isEmpty ? Result.succeed(s) : fail(key, `the string '${s}' is not allowed to refer to a store path`)
      }
      return fail(key, "must be a string")
    }
    const setOutputs = (key: string, names: ReadonlyArray<string>): Ok<void> => {
      const seen = new Set<string>()
      for (const o of names) {
        if (seen.has(o)) return fail(key, `duplicate derivation output '${o}'`)
        if (o === "drv") return fail(key, "invalid derivation output name 'drv'")
        const valid = StorePath.validateName(StorePath.outputPathName(name, o))
        if (o === "" || /["\\]/.test(o) || Result.isFailure(valid)) return fail(key, `invalid derivation output name '${o}'`)
        seen.add(o)
      }
      if (seen.size === 0) return fail(key, "a derivation cannot have an empty set of outputs")
      outputNames = names
      return Result.void
    }
    const setHashMode = (key: string, s: string): Ok<void> =>
      s in hashModes ? Result.succeed(void (hashMode = hashModes[s as keyof typeof hashModes])) : fail(key, `invalid value '${s}' for 'outputHashMode'`)

    const keys = Object.keys(attrs).sort(compareUtf8)
    for (const key of keys) {
      const v = attrs[key]
      if (v === undefined || key === "__ignoreNulls") continue
      if (ignoreNulls && v === null) continue
      if (key === "__contentAddressed" || key === "__impure") continue
      if (key === "args") {
        if (!Array.isArray(v)) return yield* fail(key, "must be a list")
        for (const a of v as ReadonlyArray<Value>) {
          const s = coerceToString(a, ctx)
          if (!s.ok) return yield* fail(key, s.reason)
          args.push(s.value)
        }
        continue
      }
      if (structured) {
        if (key === "__structuredAttrs") continue
        const j = toJson(v, ctx)
        if (!j.ok) return yield* fail(key, j.reason)
        json.set(key, j.value)
        if (key === "builder") {
          if (typeof v !== "string" && !isReference(v)) return yield* fail(key, "must be a string")
          builder = j.value as string
        } else if (key === "system") system = yield* plainString(key, v)
        else if (key === "outputHash") outputHash = yield* plainString(key, v)
        else if (key === "outputHashAlgo") outputHashAlgo = yield* plainString(key, v)
        else if (key === "outputHashMode") yield* setHashMode(key, yield* plainString(key, v))
        else if (key === "outputs") {
          if (!Array.isArray(v)) return yield* fail(key, "must be a list of strings")
          const names: Array<string> = []
          for (const o of v as ReadonlyArray<Value>) names.push(yield* plainString(key, o))
          yield* setOutputs(key, names)
        }
      } else {
        const s = coerceToString(v, ctx)
        if (!s.ok) return yield* fail(key, s.reason)
        env.set(key, s.value)
        if (key === "builder") builder = s.value
        else if (key === "system") system = s.value
        else if (key === "outputHash") outputHash = s.value
        else if (key === "outputHashAlgo") outputHashAlgo = s.value
        else if (key === "outputHashMode") yield* setHashMode(key, s.value)
        else if (key === "outputs") yield* setOutputs(key, s.value.split(/[ \t\n\r]+/).filter((t) => t !== ""))
      }
    }
    if (structured) env.set("__json", Json.printNix(json))

    // `drvPath(dep)` (Nix's `=` context): the whole closure of the .drv becomes input.
    for (const handle of ctx.drvPaths.values()) {
      const closure = drvClosure(handle)
      if (Result.isFailure(closure)) return yield* fail("", closure.failure)
      for (const src of closure.success.srcs) ctx.srcs.add(src)
      for (const d of closure.success.drvs) {
        ctx.srcs.add(d.drvPath)
        for (const o of d.derivation!.outputs.keys()) ctx.addOutput(d, o)
      }
    }

    if (builder === "") return yield* fail("builder", "required attribute 'builder' missing")
    if (system === "") return yield* fail("system", "required attribute 'system' missing")
    // The .drv format writes the system unescaped, so it cannot hold quotes or backslashes.
    if (/["\\]/.test(system)) return yield* fail("system", "the system cannot contain '\"' or '\\'")

    const inputSrcs = [...ctx.srcs]
    const sourceClosure = new Set(inputSrcs)
    for (const refs of ctx.srcReferences.values()) for (const r of refs) sourceClosure.add(r)
    const references: Array<StorePath.StorePath> = []
    for (const path of [...inputSrcs, ...ctx.outputs.keys()]) {
      const valid = StorePath.parse(path, storeDir)
      if (Result.isFailure(valid)) return yield* fail("", valid.failure.message)
      references.push(valid.success)
    }
    const inputDrvs = new Map([...ctx.outputs].map(([path, { names }]) => [path, [...names]]))
    const inputHashes = new Map<string, DrvHash>([...ctx.outputs].map(([path, { drv }]) => [path, drv.drvHash]))

    const sortedOutputs = [...new Set(outputNames)].sort(compareUtf8)
    const outputs = new Map<string, DerivationOutput>()
    const algoOf = (s: string) => Hash.isHashAlgorithm(s) ? s : undefined
    if (outputHash !== undefined) {
      if (sortedOutputs.length !== 1 || sortedOutputs[0] !== "out") {
        return yield* fail("outputHash", "multiple outputs are not supported in fixed-output derivations")
      }
      const algorithm = algoOf(outputHashAlgo)
      let hash: Hash.Hash
      if (outputHash === "") {
        if (algorithm === undefined) return yield* fail("outputHash", "an empty hash requires an explicit hash type (outputHashAlgo)")
        hash = Hash.make(algorithm, new Uint8Array(Hash.digestSize[algorithm]))
      } else {
        const parsed = Hash.parse(outputHash, algorithm)
        if (Result.isFailure(parsed)) return yield* fail("outputHash", parsed.failure.message)
        hash = parsed.success
      }
      const method = hashMode ?? "flat"
      const path = StorePath.print(StorePath.makeFixedOutput(method, hash, name, { storeDir }), storeDir)
      env.set("out", path)
      outputs.set("out", fixed(path, method, hash))
    } else if (contentAddressed || isImpure) {
      const algorithm = algoOf(outputHashAlgo) ?? "sha256"
      const method = hashMode ?? "recursive"
      for (const o of sortedOutputs) {
        env.set(o, hashPlaceholder(o))
        outputs.set(o, isImpure ? impure(method, algorithm) : floating(method, algorithm))
      }
    } else {
      for (const o of sortedOutputs) { env.set(o, ""); outputs.set(o, deferred) }
      const masked: Derivation = { name, outputs, inputDrvs, inputSrcs, system, builder, args, env }
      const h = yield* Result.mapError(hashDerivationModulo(masked, true, { cache: new Map(inputHashes), storeDir }),
        (e) => new InvalidDerivationArgs({ name, attribute: "", reason: e.message }))
      if (h.kind === "Regular") {
        for (const o of sortedOutputs) {
          const path = StorePath.print(StorePath.makeOutput(o, h.hashes.get(o)!, name, storeDir), storeDir)
          env.set(o, path)
          outputs.set(o, inputAddressed(path))
        }
      }
    }

    const drv: Derivation = { name, outputs, inputDrvs, inputSrcs, system, builder, args, env }
    const aterm = print(drv)
    const drvPath = StorePath.print(StorePath.makeText(name + drvExtension, Hash.hashBytes("sha256", aterm), references, storeDir), storeDir)
    const drvHash = yield* Result.mapError(hashDerivationModulo(drv, false, { cache: new Map(inputHashes), storeDir }),
      (e) => new InvalidDerivationArgs({ name, attribute: "", reason: e.message }))
    return makeBuilt(drvPath, drv, aterm, drvHash, outputNames, [...ctx.outputs.values()].map((o) => o.drv), [...sourceClosure])
  })
}

/**
 * Makes a derivation that was not declared here (e.g. parsed from a `.drv` file) usable as an input:
 * `drvHash` is its unmasked `hashDerivationModulo` (compute it with `hashDerivationModulo(drv, false, …)`).
 * Give its `inputs` (and the closure of its sources) if it is used with `drvPath(…)` or written to a store.
 */
export const fromDerivation = (
  drvPath: string,
  drv: Derivation,
  drvHash: DrvHash,
  options: { readonly inputs?: ReadonlyArray<DerivationHandle>; readonly sourceClosure?: ReadonlyArray<string> } = {}
): BuiltDerivation =>
  makeBuilt(drvPath, drv, print(drv), drvHash, [...drv.outputs.keys()].sort(compareUtf8), options.inputs, options.sourceClosure)

/** A `.drv` file to write to a store: its path and contents (its references are its inputs). */
export interface DrvFile {
  readonly drvPath: string
  readonly aterm: string
}

/**
 * Every derivation the given ones need, themselves included, as `.drv` files in an order in which
 * they can be added to a store (inputs first). Fails for a derivation whose contents are unknown
 * (an input loaded by path only, e.g. with `fromDerivation` without its own inputs).
 */
export const drvFileClosure = (roots: ReadonlyArray<DerivationHandle>): Ok<ReadonlyArray<DrvFile>> => {
  const out: Array<DrvFile> = []
  const state = new Map<string, "visiting" | "done">()
  for (const root of roots) {
    const stack: Array<{ handle: DerivationHandle; expanded: boolean }> = [{ handle: root, expanded: false }]
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!
      const path = top.handle.drvPath
      if (state.get(path) === "done") { stack.pop(); continue }
      if (!top.expanded) {
        top.expanded = true
        state.set(path, "visiting")
        for (const input of top.handle.inputs ?? []) if (!state.has(input.drvPath)) stack.push({ handle: input, expanded: false })
        continue
      }
      stack.pop()
      state.set(path, "done")
      if (top.handle.aterm === undefined) {
        return Result.fail(new InvalidDerivationArgs({ name: path, attribute: "", reason: "the contents of this derivation are not known here" }))
      }
      out.push({ drvPath: path, aterm: top.handle.aterm })
    }
  }
  return Result.succeed(out)
}
