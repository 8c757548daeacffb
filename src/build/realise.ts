/**
 * The scheduler: realises derivations with their whole input graph in a local store. What is
 * already valid is skipped; what a substituter has is copied from it; the rest is built in
 * dependency order, `maxJobs` at a time. Without `keepGoing` the first failure stops everything;
 * with it, everything that does not depend on a failure still finishes.
 */
import { Deferred, Effect, Exit, Result, Scope, Semaphore } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as StorePath from "../core/store-path.ts"
import type { LocalStore } from "../layers/local/local-store.ts"
import { copyPaths } from "../services/copy.ts"
import { BuildFailed, type BuildError, type BuildOptions, type BuildResult } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { buildDerivation } from "./build-derivation.ts"
import { loadDerivationGraph, type DerivationGraph } from "./read-derivation.ts"
import { checkHost, ensureBuildUsers, lockBuildUser, type BuildUser } from "../layers/sandbox/index.ts"

type Status = BuildResult["status"]
type Failure = BuildError | StoreError

/** Output name → path of a derivation whose output paths are known before building. */
const knownOutputPaths = (drvPath: string, drv: Derivation.Derivation, storeDir: string): Result.Result<Record<string, string>, BuildFailed> => {
  const paths: Record<string, string> = {}
  for (const [name, output] of drv.outputs) {
    const path = Derivation.outputPath(output)
    if (path === undefined) {
      return Result.fail(new BuildFailed({
        drvPath, logTail: "",
        reason: `output '${name}' is ${output._tag.toLowerCase()} (content-addressed or impure derivations are not supported by this builder)`
      }))
    }
    const valid = StorePath.parse(path, storeDir)
    if (Result.isFailure(valid)) return Result.fail(new BuildFailed({ drvPath, logTail: "", reason: `output '${name}': ${valid.failure.message}` }))
    paths[name] = path
  }
  return Result.succeed(paths)
}

interface Node {
  readonly drvPath: string
  readonly drv: Derivation.Derivation
  readonly outputs: Readonly<Record<string, string>>
  /** Input derivations that must be realised first. */
  readonly dependencies: ReadonlyArray<string>
  /** Store paths it uses: its sources and the used outputs of its inputs. */
  readonly inputs: ReadonlyArray<string>
}

interface Plan {
  /** Derivations to realise, dependencies before dependents. */
  readonly nodes: ReadonlyArray<Node>
  readonly outputs: ReadonlyMap<string, Readonly<Record<string, string>>>
}

/** Which derivations need work: those with an invalid output that a root needs, transitively. */
const makePlan = (
  store: LocalStore,
  graph: DerivationGraph,
  roots: ReadonlyArray<string>
): Effect.Effect<Plan, Failure> => Effect.gen(function*() {
  const storeDir = store.layout.storeDir
  const outputs = new Map<string, Readonly<Record<string, string>>>()
  for (const [drvPath, drv] of graph) outputs.set(drvPath, yield* Effect.fromResult(knownOutputPaths(drvPath, drv, storeDir)))
  const isValid = (path: string) => {
    const parsed = StorePath.parse(path, storeDir)
    return Result.isSuccess(parsed) && store.db.isValid(parsed.success)
  }
  const needed = new Map<string, Node>()
  const order: Array<Node> = []
  // Depth-first post-order with an explicit stack: dependencies land in `order` before dependents.
  const visiting = new Set<string>()
  for (const root of roots) {
    if (needed.has(root) || Object.values(outputs.get(root)!).every(isValid)) continue
    // `dependencies` is set when the entry is expanded (its input derivations pushed).
    const stack: Array<{ drvPath: string; dependencies?: ReadonlyArray<string> }> = [{ drvPath: root }]
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!
      const drv = graph.get(top.drvPath)!
      if (top.dependencies === undefined) {
        top.dependencies = [...drv.inputDrvs].filter(([input, names]) =>
          !names.every((name) => { const path = outputs.get(input)?.[name]; return path !== undefined && isValid(path) }))
          .map(([input]) => input)
        visiting.add(top.drvPath)
        for (const dep of top.dependencies) {
          if (visiting.has(dep)) return yield* new BuildFailed({ drvPath: dep, reason: "the derivation graph has a cycle", logTail: "" })
          if (!needed.has(dep)) stack.push({ drvPath: dep })
        }
        continue
      }
      const dependencies = top.dependencies
      stack.pop()
      visiting.delete(top.drvPath)
      if (needed.has(top.drvPath)) continue
      const inputs = [...drv.inputSrcs]
      for (const [input, names] of drv.inputDrvs) {
        for (const name of names) {
          const path = outputs.get(input)?.[name]
          if (path === undefined) return yield* new BuildFailed({ drvPath: top.drvPath, reason: `input '${input}' has no output '${name}'`, logTail: "" })
          inputs.push(path)
        }
      }
      const node: Node = { drvPath: top.drvPath, drv, outputs: outputs.get(top.drvPath)!, dependencies, inputs }
      needed.set(top.drvPath, node)
      order.push(node)
    }
  }
  return { nodes: order, outputs }
})

/** Copies all outputs of a derivation from the first substituter that has them all; false if none has. */
const substitute = (store: LocalStore, node: Node, options: BuildOptions): Effect.Effect<boolean, StoreError> =>
  Effect.gen(function*() {
    const storeDir = store.layout.storeDir
    const paths = Object.values(node.outputs).flatMap((p) => {
      const parsed = StorePath.parse(p, storeDir)
      return Result.isSuccess(parsed) ? [parsed.success] : []
    })
    for (const substituter of options.substituters ?? []) {
      if (substituter.storeDir !== storeDir) continue
      const present = yield* Effect.orElseSucceed(substituter.queryValidPaths(paths), () => [])
      if (present.length !== paths.length) continue
      options.onEvent?.({ type: "substituting", drvPath: node.drvPath, from: substituter.uri })
      yield* copyPaths(substituter, { read: store.read, write: store.write }, paths, {
        checkSigs: true, trustedKeys: options.trustedKeys ?? []
      })
      options.onEvent?.({ type: "substituted", drvPath: node.drvPath, from: substituter.uri })
      return true
    }
    return false
  })

/**
 * The build user all builds of one realisation run as, locked (shared, against Nix's user pool) on
 * first use and held until the realisation ends: one lock instead of one per build. b3's builds can
 * share a user because each runs in its own namespaces.
 */
const sharedBuildUser = (scope: Scope.Scope) => {
  let user: BuildUser | undefined
  const once = Semaphore.makeUnsafe(1)
  return (drvPath: string) => once.withPermits(1)(Effect.suspend(() => user !== undefined ? Effect.succeed(user) : Effect.gen(function*() {
    const tools = yield* checkHost
    const locked = yield* lockBuildUser(yield* ensureBuildUsers(), tools, "b3").pipe(Effect.provideService(Scope.Scope, scope))
    user = { name: locked.name, uid: locked.uid, gid: locked.gid } // held: the sandbox need not lock it again
    return user
  }).pipe(Effect.mapError((e) => new BuildFailed({ drvPath, reason: e.message, logTail: "" })))))
}

const dependencyFailed = (drvPath: string, dependency: string) =>
  new BuildFailed({ drvPath, reason: `dependency '${dependency}' failed`, logTail: "" })

/** A failure that only passes on a dependency's (reported once, where it happened). */
const isDependencyFailure = (e: Failure) => e instanceof BuildFailed && e.reason.startsWith("dependency '")

/** Realises `roots` (drv paths valid in the store); see the module comment. */
export const realise = (
  store: LocalStore,
  roots: ReadonlyArray<StorePath.StorePath>,
  options: BuildOptions = {}
): Effect.Effect<ReadonlyArray<BuildResult>, Failure> => Effect.scoped(Effect.gen(function*() {
  const storeDir = store.layout.storeDir
  const rootPaths = roots.map((r) => StorePath.print(r, storeDir))
  const graph = yield* loadDerivationGraph(store.read, roots)
  const plan = yield* makePlan(store, graph, rootPaths)
  options.onEvent?.({
    type: "plan",
    build: plan.nodes.map((n) => n.drvPath),
    valid: rootPaths.filter((r) => !plan.nodes.some((n) => n.drvPath === r))
  })

  const jobs = yield* Semaphore.make(Math.max(1, options.maxJobs ?? 1))
  const buildUserFor = sharedBuildUser(yield* Effect.scope)
  const done = new Map<string, Deferred.Deferred<Status, Failure>>()
  for (const node of plan.nodes) done.set(node.drvPath, yield* Deferred.make<Status, Failure>())

  const realiseNode = (node: Node): Effect.Effect<Status, Failure> => Effect.gen(function*() {
    for (const dep of node.dependencies) {
      const exit = yield* Effect.exit(Deferred.await(done.get(dep)!))
      if (Exit.isFailure(exit)) return yield* dependencyFailed(node.drvPath, dep)
    }
    if (yield* substitute(store, node, options)) return "substituted" as const
    return yield* jobs.withPermits(1)(Effect.gen(function*() {
      options.onEvent?.({ type: "building", drvPath: node.drvPath })
      const buildUser = yield* buildUserFor(node.drvPath)
      const outputs = yield* buildDerivation({
        store, drvPath: node.drvPath, buildUser, drv: node.drv, outputPaths: node.outputs, inputs: node.inputs,
        cores: options.cores, timeoutSeconds: options.timeoutSeconds, maxSilentSeconds: options.maxSilentSeconds,
        onLog: options.onLog ? (chunk) => options.onLog!(node.drvPath, chunk) : undefined
      })
      options.onEvent?.({ type: "built", drvPath: node.drvPath, outputs })
      return "built" as const
    }))
  }).pipe(
    Effect.tapError((e) => Effect.sync(() => {
      if (!isDependencyFailure(e)) {
        options.onEvent?.({ type: "failed", drvPath: node.drvPath, message: e.message })
      }
    })),
    Effect.onExit((exit) => Deferred.done(done.get(node.drvPath)!, exit))
  )

  const exits = yield* Effect.forEach(plan.nodes, (node) => options.keepGoing ? Effect.exit(realiseNode(node)) : Effect.map(realiseNode(node), Exit.succeed), {
    concurrency: "unbounded"
  })
  const failures: Array<Failure> = []
  exits.forEach((exit) => {
    if (Exit.isFailure(exit)) {
      const error = exit.cause.reasons.find((r) => r._tag === "Fail")
      if (error && error._tag === "Fail" && !isDependencyFailure(error.error)) failures.push(error.error)
    }
  })
  if (failures.length > 0) {
    const [first] = failures
    if (failures.length === 1 || !(first instanceof BuildFailed)) return yield* Effect.fail(first!)
    const others = failures.slice(1).map((f) => ("drvPath" in f ? f.drvPath : f.message))
    return yield* new BuildFailed({ drvPath: first.drvPath, reason: `${first.reason} (${others.length} more failed: ${others.join(", ")})`, logTail: first.logTail })
  }

  const statusOf = new Map(plan.nodes.map((n, i) => {
    const exit = exits[i]!
    return [n.drvPath, Exit.isSuccess(exit) ? exit.value : "built"] as const
  }))
  return roots.map((root, i) => ({
    drvPath: root,
    status: statusOf.get(rootPaths[i]!) ?? "already-valid",
    outputs: Object.fromEntries(Object.entries(plan.outputs.get(rootPaths[i]!)!).map(([name, path]) =>
      // validated by knownOutputPaths
      [name, (StorePath.parse(path, storeDir) as Result.Success<StorePath.StorePath, never>).success]))
  }))
}))
