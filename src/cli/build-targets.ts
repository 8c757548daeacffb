/**
 * What `b3 build` accepts, turned into `.drv` store paths in the target store: a `.drv` store path
 * already valid there, a `.drv` file on disk (added to the store as Nix's `.drv` text paths are), or a
 * TypeScript/JavaScript module whose exports are derivations made with b3's derivation API (their
 * whole `.drv` graph is added).
 */
import { existsSync } from "node:fs"
import { basename, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { Effect, Result, Schema } from "effect"
import * as ByteString from "../core/byte-string.ts"
import * as Derivation from "../core/derivation/index.ts"
import { importModule } from "../io/import-module.ts"
import { FileNotFound } from "../nar/fs/errors.ts"
import { shareModules } from "../io/shared-modules.ts"
import type { DerivationHandle } from "../core/derivation/values.ts"
import * as StorePath from "../core/store-path.ts"
import { addDerivationText, addDrvFile } from "../build/add-derivations.ts"
import { addDerivationClosure } from "../build/derivation-closure.ts"
import { substituteMissing, type SubstituteOptions } from "../build/substitute.ts"
import { BuildFailed } from "../services/store-build.ts"
import { StoreRead } from "../services/store-read.ts"
import { StoreWrite } from "../services/store-write.ts"
import { readBounded } from "../io/read-bounded.ts"

export class BadBuildTarget extends Schema.TaggedError<BadBuildTarget>()("BadBuildTarget", {
  target: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `cannot build '${this.target}': ${this.reason}` }
}

/** `b3 log` found no log for the derivation. */
export class NoBuildLog extends Schema.TaggedError<NoBuildLog>()("NoBuildLog", {
  drvPath: Schema.String,
  reason: Schema.optional(Schema.String)
}) {
  override get message() { return `no build log for '${this.drvPath}' (${this.reason ?? "it was not built in this store"})` }
}

const moduleExtensions = [".ts", ".mts", ".js", ".mjs"]
const derivationBrand = Symbol.for("b3/derivation-value")

const isDerivation = (value: unknown): value is Derivation.BuiltDerivation =>
  typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[derivationBrand] === "Derivation"

/** The derivations a module exports: its default export (one or a list) and named exports, in that order. */
const exportedDerivations = (module: Record<string, unknown>): Array<Derivation.BuiltDerivation> => {
  const found: Array<Derivation.BuiltDerivation> = []
  const add = (value: unknown) => {
    if (isDerivation(value)) found.push(value)
    else if (Array.isArray(value)) value.filter(isDerivation).forEach((d) => found.push(d))
  }
  add(module.default)
  for (const [name, value] of Object.entries(module)) if (name !== "default") add(value)
  return [...new Map(found.map((d) => [d.drvPath, d])).values()]
}

const loadModule = (target: string) => Effect.tryPromise({
  try: () => {
    shareModules()
    return importModule<Record<string, unknown>>(pathToFileURL(resolve(target)).href)
  },
  catch: (e) => new BadBuildTarget({ target, reason: `loading the module failed: ${e instanceof Error ? e.message : String(e)}` })
})

/** The input sources of a module's derivations (their `.drv` files refer to them, so they must be valid first). */
const sourcesOf = (roots: ReadonlyArray<DerivationHandle>, storeDir: string) => Effect.gen(function*() {
  const files = yield* Effect.fromResult(Derivation.drvFileClosure(roots))
  const sources: Array<StorePath.StorePath> = []
  for (const file of files) {
    const parsed = Derivation.parse(new TextEncoder().encode(file.aterm), { name: Derivation.nameFromDrvPath(file.drvPath), storeDir })
    if (Result.isFailure(parsed)) continue // reported when the file is added
    for (const src of parsed.success.inputSrcs) {
      const path = StorePath.parse(src, storeDir)
      if (Result.isSuccess(path)) sources.push(path.success)
    }
  }
  return sources
})

/**
 * Resolves one command-line target to the `.drv` paths to build in the store of the context; a
 * module's input sources missing from the store are taken from the substituters first.
 */
export const resolveTarget = (target: string, substitute: SubstituteOptions = {}) => Effect.gen(function*() {
  const read = yield* StoreRead
  const write = yield* StoreWrite
  const storeDir = read.storeDir

  if (moduleExtensions.some((ext) => target.endsWith(ext))) {
    if (!existsSync(target)) return yield* new FileNotFound({ path: target })
    const roots = exportedDerivations(yield* loadModule(target))
    if (roots.length === 0) return yield* new BadBuildTarget({ target, reason: "the module exports no derivations (export default [drv, …])" })
    const handles = roots as ReadonlyArray<DerivationHandle>
    yield* substituteMissing(yield* sourcesOf(handles, storeDir).pipe(Effect.orElseSucceed(() => [])), target, substitute)
    return yield* addDerivationClosure(write, storeDir, handles).pipe(
      Effect.catchTag("InvalidDerivationArgs", (e) => Effect.fail(new BadBuildTarget({ target, reason: e.message }))))
  }

  const asStorePath = StorePath.parse(target, storeDir)
  if (Result.isSuccess(asStorePath) && (yield* read.isValidPath(asStorePath.success))) {
    if (!asStorePath.success.name.endsWith(Derivation.drvExtension)) {
      return yield* new BadBuildTarget({ target, reason: "it is a store path but not a derivation (.drv)" })
    }
    return [asStorePath.success]
  }
  if (target.endsWith(Derivation.drvExtension) && existsSync(target)) {
    const aterm = ByteString.decode(yield* readBounded(target, Derivation.maxDerivationBytes, "a derivation"))
    const base = basename(target)
    if (Result.isSuccess(StorePath.parseBaseName(base))) return [yield* addDrvFile(write, storeDir, { drvPath: `${storeDir}/${base}`, aterm })]
    // Only the name is known: add it and take the path its contents give.
    const added = addDerivationText(write, storeDir, base.slice(0, -Derivation.drvExtension.length), aterm, target)
    return [yield* Effect.mapError(added, (e) => e instanceof BuildFailed ? new BadBuildTarget({ target, reason: e.reason }) : e)]
  }
  return yield* new BadBuildTarget({ target, reason: `not a valid derivation in ${read.uri}, a .drv file, or a module (${moduleExtensions.join(", ")})` })
})
