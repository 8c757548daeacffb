/**
 * The scheduler: realises derivations with their whole input graph in the store of the context,
 * as Nix 2.8 with `ca-derivations` does.
 *
 * - What is valid is skipped. An output is valid when its path is known and valid, or when the
 *   store has a realisation of it (`DrvOutput` = its static hash and name) whose path is valid.
 * - What a substituter has is copied from it: by path, or for outputs known only after a build by
 *   realisation (signed by a trusted key), with the realisations it depends on.
 * - The rest is built in the `Sandbox`, in dependency order, `maxJobs` at a time, and registered
 *   through the `BuildHost`. A derivation that depends on floating content-addressed or impure
 *   outputs is first resolved (its inputs replaced by their actual paths, `tryResolve`), the
 *   resolved derivation written to the store, and that is what is built — unless the store already
 *   has its realisations: two derivations that resolve alike are built once (early cut-off).
 * - Realisations are recorded for every pure derivation output built or found valid.
 * - Impure derivations are always built, never substituted, and record no realisation; a pure
 *   derivation other than a fixed-output one may not depend on one.
 *
 * With a `postBuildHook`, it runs after each build, once the outputs and their realisations are
 * registered, one hook at a time (derivation-goal.cc `runPostBuildHook`): for a resolved derivation
 * once for the resolved one and once more for the original. Substituted and already valid outputs
 * run no hook.
 *
 * Without `keepGoing` the first failure stops everything; with it, everything that does not depend
 * on a failure still finishes — except a failed post-build-hook, which stops everything as in Nix
 * (there it is an error out of the worker, not a failed goal).
 */
import { Deferred, Effect, Exit, Option, Result, Scope, Semaphore } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as Parsed from "../core/derivation/parsed.ts"
import { tryResolve } from "../core/derivation/resolve.ts"
import * as Hash from "../core/hash.ts"
import * as Realisation from "../core/realisation.ts"
import * as StorePath from "../core/store-path.ts"
import { BuildHost } from "../services/build-host.ts"
import { copyPaths } from "../services/copy.ts"
import { keepsRealisations, queryRealisation, realisationClosure, registerRealisation } from "../services/realisations.ts"
import type { Sandbox } from "../services/sandbox.ts"
import { BuildFailed, type PostBuildHookFailed, type BuildError, type BuildOptions, type BuildResult } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead } from "../services/store-read.ts"
import { StoreWrite } from "../services/store-write.ts"
import { addDerivationText } from "./add-derivations.ts"
import { buildDerivation, type ReferencesCache } from "./build-derivation.ts"
import { runPostBuildHook } from "./post-build-hook.ts"
import { loadDerivationGraph, type DerivationGraph, type LoadedDerivation } from "./derivation-graph.ts"
import { byPriority, substituteAll, substituteMissing } from "./substitute.ts"

type Status = BuildResult["status"]
type Failure = BuildError | StoreError

/** What the scheduler needs: the store it realises into, a host to register builds and a sandbox to run them. */
export type RealiseServices = StoreRead | StoreWrite | BuildHost | Sandbox

/** A derivation of the graph with what the scheduler knows of it before anything runs. */
interface Info {
  readonly key: string
  readonly loaded: LoadedDerivation
  readonly type: Derivation.DerivationType
  /** Output name → the hash its realisation is recorded under (Nix's staticOutputHashes). */
  readonly staticHashes: ReadonlyMap<string, Hash.Hash>
}

interface Node extends Info {
  /** Input derivations (keys) that must be realised first. */
  readonly dependencies: ReadonlyArray<string>
}

interface Outcome {
  readonly status: Status
  /** Output name → the realised path. */
  readonly outputs: ReadonlyMap<string, StorePath.StorePath>
}

const failure = (drvPath: StorePath.StorePath, storeDir: string, reason: string) =>
  new BuildFailed({ drvPath: StorePath.print(drvPath, storeDir), reason, logTail: "" })

const isPure = (type: Derivation.DerivationType) => type !== "Impure"
const hasKnownOutputs = (type: Derivation.DerivationType) => type === "InputAddressed" || type === "Fixed"

const dependencyFailed = (drvPath: string, dependency: string) =>
  new BuildFailed({ drvPath, reason: `dependency '${dependency}' failed`, logTail: "" })

/** A failure that only passes on a dependency's (reported once, where it happened). */
const isDependencyFailure = (e: Failure) => e instanceof BuildFailed && e.reason.startsWith("dependency '")

/** Realises `roots` (drv paths valid in the store); see the module comment. */
export const realise = (
  roots: ReadonlyArray<StorePath.StorePath>,
  options: BuildOptions = {}
): Effect.Effect<ReadonlyArray<BuildResult>, Failure, RealiseServices> => Effect.gen(function*() {
  const store = yield* StoreRead
  const write = yield* StoreWrite
  const target = { read: store, write }
  const storeDir = store.storeDir
  const print = (path: StorePath.StorePath) => StorePath.print(path, storeDir)
  const graph = yield* loadDerivationGraph(roots, { realStoreDir: (yield* BuildHost).realStoreDir })
  const infos = yield* staticInfos(graph, storeDir)
  const info = (key: string) => infos.get(key)!
  const register = (r: Realisation.Realisation) => keepsRealisations(write) ? registerRealisation(target, r) : Effect.void

  // Which outputs are valid already (memoised; as Nix's checkPathValidity, a valid output with a
  // known path gets its realisation recorded when it has none).
  const validity = new Map<string, ReadonlyMap<string, StorePath.StorePath>>()
  const validOutputs = (key: string) => Effect.gen(function*() {
    const known = validity.get(key)
    if (known !== undefined) return known
    const node = info(key)
    const valid = new Map<string, StorePath.StorePath>()
    if (isPure(node.type)) {
      const staticPaths = [...node.loaded.outputPaths.values()]
      const validStatic = new Set((yield* store.queryValidPaths(staticPaths)).map(StorePath.baseName))
      for (const name of node.loaded.drv.outputs.keys()) {
        const id = { drvHash: node.staticHashes.get(name)!, outputName: name }
        const r = yield* queryRealisation(store, id)
        if (Option.isSome(r) && (yield* store.isValidPath(r.value.outPath))) { valid.set(name, r.value.outPath); continue }
        const path = node.loaded.outputPaths.get(name)
        if (path !== undefined && validStatic.has(StorePath.baseName(path))) {
          valid.set(name, path)
          if (Option.isNone(r)) yield* register(Realisation.make(id, path))
        }
      }
    }
    validity.set(key, valid)
    return valid
  })
  const allValid = (key: string, names: Iterable<string>) => Effect.map(validOutputs(key), (valid) => [...names].every((n) => valid.has(n)))

  // The plan: roots not valid, and (transitively) the inputs they need that are not valid.
  const planned = new Map<string, Node>()
  const order: Array<Node> = []
  const visiting = new Set<string>()
  for (const root of roots) {
    const rootKey = StorePath.baseName(root)
    if (planned.has(rootKey) || (yield* allValid(rootKey, info(rootKey).loaded.drv.outputs.keys()))) continue
    const stack: Array<{ key: string; dependencies?: ReadonlyArray<string> }> = [{ key: rootKey }]
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!
      const node = info(top.key)
      if (top.dependencies === undefined) {
        const dependencies: Array<string> = []
        for (const input of node.loaded.inputDrvs) {
          const inputKey = StorePath.baseName(input.path)
          const inputType = info(inputKey).type
          if (isPure(node.type) && node.type !== "Fixed" && !isPure(inputType)) {
            return yield* failure(node.loaded.path, storeDir, `pure derivation '${print(node.loaded.path)}' depends on impure derivation '${print(input.path)}'`)
          }
          if (!(yield* allValid(inputKey, input.outputs))) dependencies.push(inputKey)
        }
        top.dependencies = dependencies
        visiting.add(top.key)
        for (const dep of dependencies) {
          if (visiting.has(dep)) return yield* failure(info(dep).loaded.path, storeDir, "the derivation graph has a cycle")
          if (!planned.has(dep)) stack.push({ key: dep })
        }
        continue
      }
      stack.pop()
      visiting.delete(top.key)
      if (planned.has(top.key)) continue
      const entry: Node = { ...node, dependencies: top.dependencies }
      planned.set(top.key, entry)
      order.push(entry)
    }
  }
  options.onEvent?.({
    type: "plan",
    build: order.map((n) => print(n.loaded.path)),
    valid: roots.filter((r) => !planned.has(StorePath.baseName(r))).map(print)
  })
  const rootKeySet = new Set(roots.map(StorePath.baseName))
  const resultOf = (key: string, status: Status, outputs: ReadonlyMap<string, StorePath.StorePath>): BuildResult =>
    ({ drvPath: info(key).loaded.path, status, outputs: Object.fromEntries(outputs) })
  for (const key of rootKeySet) if (!planned.has(key)) options.onResult?.(resultOf(key, "already-valid", validity.get(key) ?? new Map()))

  // The references of the paths this run has seen (inputs' closures, outputs just registered):
  // each build's input closure is then computed without asking the store again.
  const references: ReferencesCache = new Map()
  const jobs = yield* Semaphore.make(Math.max(1, options.maxJobs ?? 1))
  const hooks = yield* Semaphore.make(1)
  const hookFailed = yield* Deferred.make<void>()
  let hookFailure: PostBuildHookFailed | undefined
  /** The post-build-hook for a derivation built with these outputs, one at a time; its failure ends the whole run. */
  const postBuildHook = (drvPath: StorePath.StorePath, outputs: ReadonlyMap<string, StorePath.StorePath>) =>
    hooks.withPermits(1)(runPostBuildHook(options, drvPath, outputs.values(), storeDir)).pipe(
      Effect.tapError((e) => Effect.andThen(Effect.sync(() => { hookFailure ??= e }), Deferred.succeed(hookFailed, undefined))))
  const results = new Map<string, Outcome>()
  // Derivations are realised when first needed, each once: a root, then (only if it cannot be
  // substituted) its inputs, as Nix's goals do. Each runs in a fiber of this scope.
  const scope = yield* Scope.make()
  const done = new Map<string, Deferred.Deferred<Outcome, Failure>>()
  const demand = (key: string): Effect.Effect<Outcome, Failure> => Effect.suspend(() => {
    const existing = done.get(key)
    if (existing !== undefined) return Deferred.await(existing)
    const deferred = Deferred.makeUnsafe<Outcome, Failure>()
    done.set(key, deferred)
    return realiseNode(planned.get(key)!).pipe(
      Effect.exit,
      Effect.flatMap((exit) => Deferred.done(deferred, exit)),
      Effect.provideContext(context),
      Effect.forkIn(scope),
      Effect.flatMap(() => Deferred.await(deferred)))
  })

  /** The path of an input derivation's output: built in this run, or valid before it. */
  const outputOf = (inputKey: string, name: string) => results.get(inputKey)?.outputs.get(name) ?? validity.get(inputKey)?.get(name)

  /** Builds one derivation (the original, or its resolved form) and gives its outputs. */
  // A build holds one of the `maxJobs` slots until its builder has finished (buildDerivation's
  // builderDone); its outputs are then registered while the next build starts, as in Nix 2.8.
  const buildOne = (drvPath: StorePath.StorePath, drv: Derivation.Derivation, inputs: ReadonlyArray<StorePath.StorePath>, reportAs: string) =>
    Effect.scoped(Effect.gen(function*() {
      let held = false
      const freeSlot = Effect.suspend(() => {
        if (!held) return Effect.void
        held = false
        return Effect.asVoid(Semaphore.release(jobs, 1))
      })
      yield* Effect.acquireRelease(Effect.map(Semaphore.take(jobs, 1), () => { held = true }), () => freeSlot)
      options.onEvent?.({ type: "building", drvPath: reportAs })
      const knownOutputs = new Map<string, StorePath.StorePath>()
      for (const [name, output] of drv.outputs) {
        const known = Derivation.outputPath(output)
        if (known === undefined) continue
        const parsed = StorePath.parse(known, storeDir)
        if (Result.isFailure(parsed)) return yield* failure(drvPath, storeDir, parsed.failure.message)
        knownOutputs.set(name, parsed.success)
      }
      const built = yield* buildDerivation({
        drvPath, drv, knownOutputs, inputs,
        cores: options.cores, timeoutSeconds: options.timeoutSeconds, maxSilentSeconds: options.maxSilentSeconds,
        systemFeatures: options.systemFeatures, hashedMirrors: options.hashedMirrors, sandboxPaths: options.sandboxPaths,
        onLog: options.onLog ? (chunk) => options.onLog!(reportAs, chunk) : undefined,
        builderDone: freeSlot,
        references
      })
      const outputs = new Map([...built].map(([name, i]) => [name, i.path]))
      options.onEvent?.({ type: "built", drvPath: reportAs, outputs: Object.fromEntries([...outputs].map(([name, path]) => [name, print(path)])) })
      return outputs
    }))

  /** The realisations of a pure derivation's inputs that its output refers to (Nix's drvOutputReferences). */
  const dependentRealisations = (node: Info, outPath: StorePath.StorePath) => Effect.gen(function*() {
    const inputs: Array<Realisation.Realisation> = []
    for (const input of node.loaded.inputDrvs) {
      const inputInfo = info(StorePath.baseName(input.path))
      for (const name of input.outputs) {
        const r = yield* queryRealisation(store, { drvHash: inputInfo.staticHashes.get(name)!, outputName: name })
        if (Option.isNone(r)) return yield* failure(node.loaded.path, storeDir, `output '${name}' of derivation '${print(input.path)}' isn't built`)
        inputs.push(r.value)
      }
    }
    const references = new Set((yield* store.queryPathInfo(outPath)).references.map(StorePath.baseName))
    const closure = yield* realisationClosure(store, inputs)
    return new Map(closure.filter((r) => references.has(StorePath.baseName(r.outPath))).map((r) => [Realisation.printDrvOutput(r.id), r.outPath] as const))
  })

  const realiseNode = (node: Node): Effect.Effect<Outcome, Failure, RealiseServices> => Effect.gen(function*() {
    const drvPath = print(node.loaded.path)
    const parsed = yield* Effect.mapError(Effect.fromResult(Parsed.parseDerivation(node.loaded.drv, drvPath)), (e) => failure(node.loaded.path, storeDir, e.reason))
    const substitutesAllowed = yield* Effect.mapError(Effect.fromResult(Parsed.substitutesAllowed(parsed)), (e) => failure(node.loaded.path, storeDir, e.reason))
    if (isPure(node.type) && substitutesAllowed) {
      const substituted = hasKnownOutputs(node.type) ? yield* substitute(node, options) : yield* substituteRealisations(node, options)
      if (substituted !== undefined) return { status: "substituted" as const, outputs: substituted }
    }
    // Not substituted: its inputs are needed (all of them run; with keepGoing the others finish first).
    const depExits = yield* Effect.forEach(node.dependencies, (dep) => Effect.exit(demand(dep)), { concurrency: "unbounded" })
    const failedDep = depExits.findIndex(Exit.isFailure)
    if (failedDep >= 0) return yield* dependencyFailed(drvPath, print(info(node.dependencies[failedDep]!).loaded.path))

    // Sources the derivation needs that this store lacks (a fresh store, say): from the substituters too.
    yield* substituteMissing(node.loaded.inputSrcs, drvPath, options)
    const inputs: Array<StorePath.StorePath> = [...node.loaded.inputSrcs]
    for (const input of node.loaded.inputDrvs) {
      for (const name of input.outputs) {
        const path = outputOf(StorePath.baseName(input.path), name)
        if (path === undefined) return yield* failure(node.loaded.path, storeDir, `derivation '${drvPath}' requires non-existent output '${name}' from input derivation '${print(input.path)}'`)
        inputs.push(path)
      }
    }

    if (!mustResolve(node, info)) {
      const outputs = yield* buildOne(node.loaded.path, node.loaded.drv, inputs, drvPath)
      if (isPure(node.type)) {
        for (const [name, outPath] of outputs) yield* register(Realisation.make({ drvHash: node.staticHashes.get(name)!, outputName: name }, outPath))
      }
      yield* postBuildHook(node.loaded.path, outputs)
      return { status: "built" as const, outputs }
    }

    // Resolve: the inputs' actual paths in place of the placeholders that stood for them.
    const resolved = tryResolve(node.loaded.drv, (inputDrv, name) => {
      const parsedInput = StorePath.parse(inputDrv, storeDir)
      if (Result.isFailure(parsedInput)) return undefined
      const path = outputOf(StorePath.baseName(parsedInput.success), name)
      return path === undefined ? undefined : print(path)
    }, storeDir)
    if (Result.isFailure(resolved)) {
      const f = resolved.failure
      return yield* failure(node.loaded.path, storeDir, "drvPath" in f && "outputName" in f
        ? `output '${f.outputName}' of input '${f.drvPath}' is missing, so it cannot be resolved` : (f as Error).message)
    }
    const resolvedDrv = resolved.success
    const resolvedPath = yield* addDerivationText(write, storeDir, resolvedDrv.name, Derivation.print(resolvedDrv), drvPath)
    options.onEvent?.({ type: "resolved", drvPath, resolved: print(resolvedPath) })
    const resolvedHashes = yield* Effect.mapError(Effect.fromResult(Derivation.hashDerivationModulo(resolvedDrv, true, { storeDir })),
      (e) => failure(node.loaded.path, storeDir, e.message))

    // Early cut-off: the resolved derivation may have been realised already.
    let outputs: ReadonlyMap<string, StorePath.StorePath> | undefined
    let status: Status = "built"
    if (isPure(node.type)) {
      const existing = new Map<string, StorePath.StorePath>()
      for (const name of resolvedDrv.outputs.keys()) {
        const r = yield* queryRealisation(store, { drvHash: resolvedHashes.hashes.get(name)!, outputName: name })
        if (Option.isSome(r) && (yield* store.isValidPath(r.value.outPath))) existing.set(name, r.value.outPath)
      }
      if (existing.size === resolvedDrv.outputs.size) { outputs = existing; status = "already-valid" }
    }
    if (outputs === undefined) {
      const resolvedInputs = resolvedDrv.inputSrcs.flatMap((p) => { const r = StorePath.parse(p, storeDir); return Result.isSuccess(r) ? [r.success] : [] })
      outputs = yield* buildOne(resolvedPath, resolvedDrv, resolvedInputs, drvPath)
      if (isPure(node.type)) {
        for (const [name, outPath] of outputs) yield* register(Realisation.make({ drvHash: resolvedHashes.hashes.get(name)!, outputName: name }, outPath))
      }
      yield* postBuildHook(resolvedPath, outputs)
    }
    if (isPure(node.type)) {
      for (const [name, outPath] of outputs) {
        const deps = node.type === "Fixed" ? new Map() : yield* dependentRealisations(node, outPath)
        yield* register(Realisation.make({ drvHash: node.staticHashes.get(name)!, outputName: name }, outPath, { dependentRealisations: deps }))
      }
    }
    // Nix's resolvedFinished: the original derivation's hook, also when the resolved one was valid already
    yield* postBuildHook(node.loaded.path, outputs)
    return { status, outputs }
  }).pipe(
    Effect.tap((outcome) => Effect.sync(() => {
      results.set(node.key, outcome)
      if (rootKeySet.has(node.key)) options.onResult?.(resultOf(node.key, outcome.status, outcome.outputs))
    })),
    Effect.tapError((e) => Effect.sync(() => {
      if (!isDependencyFailure(e)) options.onEvent?.({ type: "failed", drvPath: print(node.loaded.path), message: e.message })
      failures.push(e)
    }))
  )

  const context = yield* Effect.context<RealiseServices>()
  const failures: Array<Failure> = []
  const rootKeys = [...new Set(roots.map(StorePath.baseName))].filter((key) => planned.has(key))
  // Without keepGoing the first failure ends everything (the scope's fibers are interrupted).
  // A failed post-build-hook ends everything, with keepGoing too.
  yield* Effect.forEach(rootKeys, (key) => options.keepGoing ? Effect.ignore(demand(key)) : demand(key), { concurrency: "unbounded", discard: true }).pipe(
    Effect.raceFirst(Deferred.await(hookFailed)),
    Effect.ensuring(Scope.close(scope, Exit.void)),
    Effect.catch(() => Effect.void))
  // Failures that happened where they are reported (not passed on from a dependency), in the order they happened.
  if (hookFailure !== undefined) return yield* Effect.fail(hookFailure)
  const real = failures.filter((f) => !isDependencyFailure(f))
  const failuresReported = real.length > 0 ? real : failures
  if (failuresReported.length > 0) {
    const [first] = failuresReported
    if (failuresReported.length === 1 || !(first instanceof BuildFailed)) return yield* Effect.fail(first!)
    const others = failuresReported.slice(1).map((f) => ("drvPath" in f ? f.drvPath : f.message))
    return yield* new BuildFailed({ drvPath: first.drvPath, reason: `${first.reason} (${others.length} more failed: ${others.join(", ")})`, logTail: first.logTail })
  }

  return roots.map((root) => {
    const key = StorePath.baseName(root)
    const outcome = results.get(key)
    const outputs = outcome?.outputs ?? validity.get(key) ?? new Map()
    return { drvPath: root, status: outcome?.status ?? "already-valid", outputs: Object.fromEntries(outputs) }
  })

  /** Outputs with known paths: copied from the first substituter that has them all, trusted (substitute.ts); their realisations recorded. */
  function substitute(node: Node, opts: BuildOptions) {
    return Effect.gen(function*() {
      if (!(yield* substituteAll([...node.loaded.outputPaths.values()], print(node.loaded.path), opts))) return undefined
      for (const [name, path] of node.loaded.outputPaths) {
        yield* register(Realisation.make({ drvHash: node.staticHashes.get(name)!, outputName: name }, path))
      }
      return new Map(node.loaded.outputPaths) as ReadonlyMap<string, StorePath.StorePath>
    })
  }

  /**
   * Outputs known only after a build, by realisation: the first substituter with a realisation of
   * every output, each signed by a trusted key, gives them; their paths (content-addressed) and the
   * realisations they depend on are copied, and the realisations recorded here.
   */
  function substituteRealisations(node: Node, opts: BuildOptions) {
    return Effect.gen(function*() {
      const drvPath = print(node.loaded.path)
      const ids = [...node.loaded.drv.outputs.keys()].map((name) => ({ drvHash: node.staticHashes.get(name)!, outputName: name }))
      for (const substituter of byPriority(opts.substituters ?? [])) {
        if (substituter.storeDir !== storeDir || substituter.queryRealisation === undefined) continue
        const found: Array<Realisation.Realisation> = []
        for (const id of ids) {
          const r = yield* Effect.orElseSucceed(queryRealisation(substituter, id), () => Option.none<Realisation.Realisation>())
          if (Option.isSome(r)) found.push(r.value)
        }
        if (found.length !== ids.length) continue
        const closure = yield* Effect.option(realisationClosure(substituter, found))
        if (Option.isNone(closure)) continue
        const untrusted = closure.value.find((r) => Realisation.validSignatures(r, opts.trustedKeys ?? []).length === 0)
        if (untrusted !== undefined) {
          opts.onEvent?.({ type: "untrusted-substitute", drvPath, from: substituter.uri, path: print(untrusted.outPath) })
          continue
        }
        opts.onEvent?.({ type: "substituting", drvPath, from: substituter.uri })
        yield* copyPaths(substituter, target, closure.value.map((r) => r.outPath), { checkSigs: true, trustedKeys: opts.trustedKeys ?? [] })
        for (const r of closure.value) yield* register(r)
        opts.onEvent?.({ type: "substituted", drvPath, from: substituter.uri })
        return new Map(found.map((r) => [r.id.outputName, r.outPath])) as ReadonlyMap<string, StorePath.StorePath>
      }
      return undefined
    })
  }
})

/**
 * Whether a derivation is built in resolved form (Nix's `inputsRealised`): deferred ones must be,
 * floating content-addressed and impure ones whenever they have input derivations; fixed-output
 * ones when an input's outputs are known only after its build (their placeholders need the paths).
 */
const mustResolve = (node: Info, info: (key: string) => Info): boolean => {
  if (node.loaded.inputDrvs.length === 0) return false
  switch (node.type) {
    case "InputAddressed": return false
    case "Deferred": case "Floating": case "Impure": return true
    case "Fixed": return node.loaded.inputDrvs.some((input) => !hasKnownOutputs(info(StorePath.baseName(input.path)).type))
  }
}

/** Each derivation's type and static output hashes (hashDerivationModulo with masked outputs), inputs hashed once. */
const staticInfos = (graph: DerivationGraph, storeDir: string): Effect.Effect<ReadonlyMap<string, Info>, BuildFailed> => Effect.gen(function*() {
  const byPrinted = new Map([...graph.values()].map((node) => [StorePath.print(node.path, storeDir), node.drv]))
  const cache = new Map<string, Derivation.DrvHash>()
  const infos = new Map<string, Info>()
  for (const [key, loaded] of graph) {
    const type = yield* Effect.mapError(Effect.fromResult(Derivation.derivationType(loaded.drv)), (e) => failure(loaded.path, storeDir, e.message))
    const hashed = yield* Effect.mapError(
      Effect.fromResult(Derivation.hashDerivationModulo(loaded.drv, true, { lookup: (p) => byPrinted.get(p), cache, storeDir })),
      (e) => failure(loaded.path, storeDir, e.message))
    infos.set(key, { key, loaded, type, staticHashes: hashed.hashes })
  }
  return infos
})
