/**
 * Building one derivation whose inputs are all valid in the store, as Nix 2.8's
 * `LocalDerivationGoal` does: the platform and `requiredSystemFeatures` are checked, outputs whose
 * path is known only afterwards (floating content-addressed, impure) are built at scratch paths
 * (`rewrite:<drv>:name:<output>`), output placeholders become the paths the builder writes to,
 * `exportReferencesGraph` closures are written for the builder, the input closure is made visible
 * in the `Sandbox`, the log goes to the `BuildHost`, and the outputs are hashed, scanned, moved to
 * their final paths, checked (`allowedReferences`, `outputChecks`, …) and registered in one step.
 */
import { cpus } from "node:os"
import { existsSync } from "node:fs"
import { Effect, Result } from "effect"
import * as ContentAddress from "../core/content-address.ts"
import * as Derivation from "../core/derivation/index.ts"
import type * as Json from "../core/derivation/json-value.ts"
import * as Parsed from "../core/derivation/parsed.ts"
import { rewriteStrings } from "../core/derivation/structured-attrs.ts"
import * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import { BuildHost } from "../services/build-host.ts"
import { computeClosure } from "../services/closure.ts"
import type { PathInfo } from "../core/path-info.ts"
import { Sandbox } from "../services/sandbox.ts"
import { BuildFailed, InvalidDerivationAttribute, MissingSystemFeatures, type BuildError } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead } from "../services/store-read.ts"
import { readDerivation } from "./derivation-graph.ts"
import { checkOutputs } from "./output-checks.ts"
import { outputInfos } from "./output-info.ts"

export interface DerivationBuild {
  readonly drvPath: StorePath.StorePath
  readonly drv: Derivation.Derivation
  /** Output name → store path, for outputs whose path is known before building (input-addressed, fixed). */
  readonly knownOutputs: ReadonlyMap<string, StorePath.StorePath>
  /** The store paths of the inputs it uses: its sources and the used outputs of its input derivations. */
  readonly inputs: ReadonlyArray<StorePath.StorePath>
  readonly cores?: number | undefined
  readonly timeoutSeconds?: number | undefined
  readonly maxSilentSeconds?: number | undefined
  readonly sandboxPaths?: ReadonlyArray<string> | undefined
  readonly onLog?: ((chunk: Uint8Array) => void) | undefined
  readonly systemFeatures?: ReadonlyArray<string> | undefined
  readonly hashedMirrors?: ReadonlyArray<string> | undefined
  /**
   * Run once the builder has finished, before its outputs are hashed, checked and registered: the
   * scheduler frees the build's job slot there, as Nix 2.8 does (a goal leaves its slot when its
   * builder ends, then registers the outputs), so the next build starts meanwhile.
   */
  readonly builderDone?: Effect.Effect<void> | undefined
  /**
   * The references of store paths known already (base name → references), for a scheduler's run:
   * the input closure is taken from here where it can be, and the references of paths queried
   * from the store are added. The references of a valid path never change.
   */
  readonly references?: ReferencesCache | undefined
}

/** Base name → the references of a valid store path (see DerivationBuild.references). */
export type ReferencesCache = Map<string, ReadonlyArray<StorePath.StorePath>>

/** computeClosure, taking references from `cache` where it has them (each path queried once per cache). */
const inputClosure = (paths: ReadonlyArray<StorePath.StorePath>, cache: ReferencesCache | undefined) =>
  cache === undefined ? computeClosure(paths) : Effect.gen(function*() {
    const store = yield* StoreRead
    const seen = new Map<string, StorePath.StorePath>()
    const pending = [...paths]
    while (pending.length > 0) {
      const path = pending.pop()!
      const key = StorePath.baseName(path)
      if (seen.has(key)) continue
      seen.set(key, path)
      let references = cache.get(key)
      if (references === undefined) {
        references = (yield* store.queryPathInfo(path)).references
        cache.set(key, references)
      }
      for (const r of references) if (!seen.has(StorePath.baseName(r))) pending.push(r)
    }
    return [...seen.values()].sort(StorePath.compare)
  })

/** Nix 2.8's default `system-features` (with `ca-derivations` on, as b3 always has it). */
export const defaultSystemFeatures = (): ReadonlyArray<string> =>
  ["benchmark", "big-parallel", "ca-derivations", ...(existsSync("/dev/kvm") ? ["kvm"] : []), "nixos-test"]

/** The number of cores (os.cpus() reads /proc/cpuinfo and more: ~2 ms a call), once per process. */
let cores: number | undefined
const coreCount = () => (cores ??= cpus().length)

/** Where an output whose path is known only after the build is built (Nix's `makeFallbackPath`). */
export const scratchPath = (drvPath: StorePath.StorePath, drvName: string, outputName: string, storeDir: string): StorePath.StorePath =>
  StorePath.make(`rewrite:${StorePath.baseName(drvPath)}:name:${outputName}`, Hash.make("sha256", new Uint8Array(32)),
    StorePath.outputPathName(drvName, outputName), storeDir)

const attributeError = (drvPath: string) => (e: { readonly reason: string }) => new InvalidDerivationAttribute({ drvPath, reason: e.reason })

/** The store path a path lies in (`/nix/store/<hash>-x/bin` → `/nix/store/<hash>-x`), if it is in the store. */
const toStorePath = (path: string, storeDir: string): StorePath.StorePath | undefined => {
  if (!path.startsWith(storeDir + "/")) return undefined
  const parsed = StorePath.parse(storeDir + "/" + path.slice(storeDir.length + 1).split("/")[0], storeDir)
  return Result.isSuccess(parsed) ? parsed.success : undefined
}

/**
 * `exportReferencesGraph`: for each name, the closure of the given paths (which must be in the input
 * closure), with the outputs of derivations in it; as Nix's `exportReferences`.
 */
const exportReferences = (
  drvPath: string,
  paths: ReadonlyArray<string>,
  inputClosure: ReadonlyArray<StorePath.StorePath>
): Effect.Effect<ReadonlyArray<PathInfo>, StoreError | BuildError, StoreRead> => Effect.gen(function*() {
  const store = yield* StoreRead
  const inputs = new Set(inputClosure.map(StorePath.baseName))
  const roots: Array<StorePath.StorePath> = []
  for (const p of paths) {
    const storePath = toStorePath(p, store.storeDir)
    if (storePath === undefined) return yield* new InvalidDerivationAttribute({ drvPath, reason: `'exportReferencesGraph' contains a non-store path '${p}'` })
    if (!inputs.has(StorePath.baseName(storePath))) {
      return yield* new InvalidDerivationAttribute({ drvPath, reason: `cannot export references of path '${StorePath.print(storePath, store.storeDir)}' because it is not in the input closure of the derivation` })
    }
    roots.push(storePath)
  }
  const closure = [...yield* computeClosure(roots)]
  for (const path of [...closure]) {
    if (!path.name.endsWith(Derivation.drvExtension)) continue
    const drv = yield* readDerivation(store, path)
    const outputs: Array<StorePath.StorePath> = []
    for (const output of drv.outputs.values()) {
      const known = Derivation.outputPath(output)
      if (known === undefined) return yield* new InvalidDerivationAttribute({ drvPath, reason: "exportReferences on CA derivations is not yet implemented" })
      const parsed = StorePath.parse(known, store.storeDir)
      if (Result.isSuccess(parsed)) outputs.push(parsed.success)
    }
    closure.push(...(yield* computeClosure(outputs)))
  }
  return yield* Effect.forEach(StorePath.uniqueSorted(closure), (p) => store.queryPathInfo(p))
})

/** `makeValidityRegistration(paths, showDerivers = false, showHash = false)`: what a plain exportReferencesGraph file holds. */
const validityRegistration = (infos: ReadonlyArray<PathInfo>, storeDir: string): string =>
  infos.map((info) => `${StorePath.print(info.path, storeDir)}\n\n${info.references.length}\n` +
    info.references.map((r) => `${StorePath.print(r, storeDir)}\n`).join("")).join("")

/** `pathInfoToJSON(…, includeImpureInfo = false, showClosureSize = true)`: the structured-attrs form. */
const pathInfosJson = (infos: ReadonlyArray<PathInfo>, storeDir: string): Json.JsonValue => {
  const byKey = new Map(infos.map((i) => [StorePath.baseName(i.path), i]))
  const closureSize = (root: PathInfo): bigint => {
    const seen = new Set<string>()
    const stack = [root]
    let size = 0n
    while (stack.length > 0) {
      const info = stack.pop()!
      const key = StorePath.baseName(info.path)
      if (seen.has(key)) continue
      seen.add(key)
      size += BigInt(info.narSize)
      for (const r of info.references) { const i = byKey.get(StorePath.baseName(r)); if (i) stack.push(i) }
    }
    return size
  }
  return infos.map((info) => {
    const entry = new Map<string, Json.JsonValue>([
      ["path", StorePath.print(info.path, storeDir)],
      ["narHash", Hash.print(info.narHash, "base32")],
      ["narSize", BigInt(info.narSize)],
      ["references", info.references.map((r) => StorePath.print(r, storeDir))]
    ])
    if (info.ca) entry.set("ca", ContentAddress.print(info.ca))
    entry.set("closureSize", closureSize(info))
    return entry
  })
}

/** Builds the derivation and registers its outputs; gives each output's final info. */
export const buildDerivation = (build: DerivationBuild): Effect.Effect<ReadonlyMap<string, PathInfo>, BuildError | StoreError, StoreRead | BuildHost | Sandbox> =>
  Effect.scoped(Effect.gen(function*() {
    const host = yield* BuildHost
    const sandbox = yield* Sandbox
    const { drv } = build
    const storeDir = host.storeDir
    const drvPath = StorePath.print(build.drvPath, storeDir)
    const parsed = yield* Effect.mapError(Effect.fromResult(Parsed.parseDerivation(drv, drvPath)), attributeError(drvPath))

    // Can this builder build it at all? (Nix: canBuildLocally.)
    const builtin = Derivation.isBuiltin(drv)
    const required = yield* Effect.mapError(Effect.fromResult(Parsed.requiredSystemFeatures(parsed)), attributeError(drvPath))
    const features = build.systemFeatures ?? defaultSystemFeatures()
    const thisSystem = sandbox.systems[0] ?? "x86_64-linux"
    if ((!builtin && !sandbox.systems.includes(drv.system)) || required.some((f) => !features.includes(f))) {
      return yield* new MissingSystemFeatures({ drvPath, platform: drv.system, required: [...required], system: thisSystem, features: [...features].sort() })
    }

    // Where each output is built, and the placeholders that stand for those paths.
    const outputs = [...drv.outputs].map(([name, output]) => ({
      name, output, scratch: build.knownOutputs.get(name) ?? scratchPath(build.drvPath, drv.name, name, storeDir)
    }))
    const rewrites = new Map(outputs.map((o) => [Derivation.hashPlaceholder(o.name), StorePath.print(o.scratch, storeDir)]))
    const rewrite = (s: string) => rewriteStrings(s, rewrites)
    const env: Record<string, string> = {}
    for (const [name, value] of drv.env) env[rewrite(name)] = rewrite(value)

    const closure = yield* inputClosure(build.inputs, build.references)
    yield* host.addTempRoots([build.drvPath, ...closure])
    // exportReferencesGraph: files in the build directory, or JSON in .attrs.json.
    const exports = yield* Effect.mapError(Effect.fromResult(Parsed.exportReferencesGraph(parsed)), attributeError(drvPath))
    const extraBuildFiles: Record<string, string> = {}
    // With structured attributes Nix 2.8 puts each closure at the top level of .attrs.json, under
    // its name (`json[i.key()]`), and leaves exportReferencesGraph as it was.
    const replace = new Map<string, Json.JsonValue>()
    for (const { name, paths } of exports) {
      const infos = yield* exportReferences(drvPath, paths, closure)
      if (parsed.structuredAttrs !== undefined) replace.set(name, pathInfosJson(infos, storeDir))
      else extraBuildFiles[name] = validityRegistration(infos, storeDir)
    }
    const attrs = yield* Effect.fromResult(Result.mapError(
      Derivation.structuredAttrsFiles(drv, { outputPaths: new Map(outputs.map((o) => [o.name, StorePath.print(o.scratch, storeDir)])), replace }),
      (e) => new BuildFailed({ drvPath, reason: e.message, logTail: "" })))

    const log = yield* host.openLog(drvPath)
    const type = yield* Effect.mapError(Effect.fromResult(Derivation.derivationType(drv)), (e) => new BuildFailed({ drvPath, reason: e.message, logTail: "" }))
    const result = yield* sandbox.run({
      storeDir,
      realStoreDir: host.realStoreDir,
      drvPath: build.drvPath,
      derivation: drv,
      drvName: drv.name,
      builder: rewrite(drv.builder),
      args: drv.args.map(rewrite),
      env,
      inputPaths: closure,
      outputPaths: outputs.map((o) => o.scratch),
      fixedOutput: type === "Fixed",
      impure: type === "Impure",
      structuredAttrs: attrs ? { json: attrs.json, sh: attrs.shell } : undefined,
      platform: drv.system,
      cores: build.cores ?? coreCount(),
      timeoutSeconds: build.timeoutSeconds || undefined,
      maxSilentSeconds: build.maxSilentSeconds || undefined,
      extraBuildFiles: Object.keys(extraBuildFiles).length > 0 ? extraBuildFiles : undefined,
      hashedMirrors: build.hashedMirrors,
      sandboxPaths: build.sandboxPaths,
      onLog: (chunk) => { log.write(chunk); build.onLog?.(chunk) }
    })
    if (build.builderDone !== undefined) yield* build.builderDone
    const registered = yield* outputInfos({ drvPath: build.drvPath, drv, storeDir, outputs, built: result.outputs, inputClosure: closure })
    if (registered.mismatch) {
      yield* host.registerBuilt(registered.built)
      return yield* registered.mismatch
    }
    yield* checkOutputs(parsed, registered.infos)
    yield* host.registerBuilt(registered.built)
    for (const info of registered.infos.values()) build.references?.set(StorePath.baseName(info.path), info.references)
    return registered.infos
  }))
