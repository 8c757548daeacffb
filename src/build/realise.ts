/**
 * The scheduler: realises derivations with their whole input graph in the store of the context.
 * What is already valid is skipped; what a substituter has is copied from it; the rest is built in
 * the `Sandbox`, in dependency order, `maxJobs` at a time, and registered through the `BuildHost`.
 * Without `keepGoing` the first failure stops everything; with it, everything that does not depend
 * on a failure still finishes.
 */
import { Deferred, Effect, Exit, Semaphore } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as StorePath from "../core/store-path.ts"
import type { BuildHost } from "../services/build-host.ts"
import type { Sandbox } from "../services/sandbox.ts"
import { BuildFailed, type BuildError, type BuildOptions, type BuildResult } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead } from "../services/store-read.ts"
import { StoreWrite } from "../services/store-write.ts"
import { buildDerivation } from "./build-derivation.ts"
import { substituteAll, substituteMissing } from "./substitute.ts"
import { loadDerivationGraph, type DerivationGraph, type LoadedDerivation } from "./derivation-graph.ts"

type Status = BuildResult["status"]
type Failure = BuildError | StoreError

/** What the scheduler needs: the store it realises into, a host to register builds and a sandbox to run them. */
export type RealiseServices = StoreRead | StoreWrite | BuildHost | Sandbox

interface Node {
  readonly key: string
  readonly drvPath: StorePath.StorePath
  readonly drv: Derivation.Derivation
  readonly outputs: Readonly<Record<string, StorePath.StorePath>>
  /** Input derivations (keys) that must be realised first. */
  readonly dependencies: ReadonlyArray<string>
  /** Store paths it uses: its sources and the used outputs of its inputs. */
  readonly inputs: ReadonlyArray<StorePath.StorePath>
}

interface Plan {
  /** Derivations to realise, dependencies before dependents. */
  readonly nodes: ReadonlyArray<Node>
}

const failure = (drvPath: StorePath.StorePath, storeDir: string, reason: string) =>
  new BuildFailed({ drvPath: StorePath.print(drvPath, storeDir), reason, logTail: "" })

/** Output name → path of a derivation whose output paths are all known before building. */
const knownOutputs = (node: LoadedDerivation, storeDir: string): Effect.Effect<Record<string, StorePath.StorePath>, BuildFailed> => {
  const paths: Record<string, StorePath.StorePath> = {}
  for (const [name, output] of node.drv.outputs) {
    const path = node.outputPaths.get(name)
    if (path === undefined) {
      return Effect.fail(failure(node.path, storeDir,
        `output '${name}' is ${output._tag.toLowerCase()} (content-addressed or impure derivations are not supported by this builder)`))
    }
    paths[name] = path
  }
  return Effect.succeed(paths)
}

/** Which derivations need work: those with an invalid output that a root needs, transitively. */
const makePlan = (graph: DerivationGraph, roots: ReadonlyArray<StorePath.StorePath>): Effect.Effect<Plan, Failure, StoreRead> =>
  Effect.gen(function*() {
    const store = yield* StoreRead
    const storeDir = store.storeDir
    const outputs = new Map<string, Record<string, StorePath.StorePath>>()
    for (const [key, node] of graph) outputs.set(key, yield* knownOutputs(node, storeDir))
    const valid = new Set((yield* store.queryValidPaths([...outputs.values()].flatMap((o) => Object.values(o)))).map(StorePath.baseName))
    const isValid = (path: StorePath.StorePath | undefined) => path !== undefined && valid.has(StorePath.baseName(path))
    const needed = new Map<string, Node>()
    const order: Array<Node> = []
    // Depth-first post-order with an explicit stack: dependencies land in `order` before dependents.
    const visiting = new Set<string>()
    for (const root of roots) {
      const rootKey = StorePath.baseName(root)
      if (needed.has(rootKey) || Object.values(outputs.get(rootKey)!).every(isValid)) continue
      // `dependencies` is set when the entry is expanded (its input derivations pushed).
      const stack: Array<{ key: string; dependencies?: ReadonlyArray<string> }> = [{ key: rootKey }]
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!
        const node = graph.get(top.key)!
        if (top.dependencies === undefined) {
          top.dependencies = node.inputDrvs
            .filter((input) => !input.outputs.every((name) => isValid(outputs.get(StorePath.baseName(input.path))?.[name])))
            .map((input) => StorePath.baseName(input.path))
          visiting.add(top.key)
          for (const dep of top.dependencies) {
            if (visiting.has(dep)) return yield* failure(graph.get(dep)!.path, storeDir, "the derivation graph has a cycle")
            if (!needed.has(dep)) stack.push({ key: dep })
          }
          continue
        }
        const dependencies = top.dependencies
        stack.pop()
        visiting.delete(top.key)
        if (needed.has(top.key)) continue
        const inputs = [...node.inputSrcs]
        for (const input of node.inputDrvs) {
          for (const name of input.outputs) {
            const path = outputs.get(StorePath.baseName(input.path))?.[name]
            if (path === undefined) {
              return yield* failure(node.path, storeDir, `input '${StorePath.print(input.path, storeDir)}' has no output '${name}'`)
            }
            inputs.push(path)
          }
        }
        const planned: Node = { key: top.key, drvPath: node.path, drv: node.drv, outputs: outputs.get(top.key)!, dependencies, inputs }
        needed.set(top.key, planned)
        order.push(planned)
      }
    }
    return { nodes: order }
  })

const dependencyFailed = (drvPath: string, dependency: string) =>
  new BuildFailed({ drvPath, reason: `dependency '${dependency}' failed`, logTail: "" })

/** A failure that only passes on a dependency's (reported once, where it happened). */
const isDependencyFailure = (e: Failure) => e instanceof BuildFailed && e.reason.startsWith("dependency '")

/** Realises `roots` (drv paths valid in the store); see the module comment. */
export const realise = (
  roots: ReadonlyArray<StorePath.StorePath>,
  options: BuildOptions = {}
): Effect.Effect<ReadonlyArray<BuildResult>, Failure, RealiseServices> => Effect.gen(function*() {
  const storeDir = (yield* StoreRead).storeDir
  const print = (path: StorePath.StorePath) => StorePath.print(path, storeDir)
  const graph = yield* loadDerivationGraph(roots)
  const plan = yield* makePlan(graph, roots)
  const planned = new Set(plan.nodes.map((n) => n.key))
  options.onEvent?.({
    type: "plan",
    build: plan.nodes.map((n) => print(n.drvPath)),
    valid: roots.filter((r) => !planned.has(StorePath.baseName(r))).map(print)
  })

  const rootKeys = new Set(roots.map(StorePath.baseName))
  const resultOf = (key: string, status: Status): BuildResult => {
    const node = graph.get(key)!
    return { drvPath: node.path, status, outputs: Object.fromEntries(node.outputPaths) }
  }
  for (const key of rootKeys) if (!planned.has(key)) options.onResult?.(resultOf(key, "already-valid"))

  const jobs = yield* Semaphore.make(Math.max(1, options.maxJobs ?? 1))
  const done = new Map<string, Deferred.Deferred<Status, Failure>>()
  for (const node of plan.nodes) done.set(node.key, yield* Deferred.make<Status, Failure>())

  const realiseNode = (node: Node): Effect.Effect<Status, Failure, RealiseServices> => Effect.gen(function*() {
    const drvPath = print(node.drvPath)
    for (const dep of node.dependencies) {
      const exit = yield* Effect.exit(Deferred.await(done.get(dep)!))
      if (Exit.isFailure(exit)) return yield* dependencyFailed(drvPath, print(graph.get(dep)!.path))
    }
    if (yield* substituteAll(Object.values(node.outputs), drvPath, options)) return "substituted" as const
    // sources the derivation needs that this store lacks (a fresh store, say): from the substituters too
    yield* substituteMissing(node.drv.inputSrcs.length === 0 ? [] : graph.get(node.key)!.inputSrcs, drvPath, options)
    return yield* jobs.withPermits(1)(Effect.gen(function*() {
      options.onEvent?.({ type: "building", drvPath })
      yield* buildDerivation({
        drvPath: node.drvPath, drv: node.drv, outputs: node.outputs, inputs: node.inputs,
        cores: options.cores, timeoutSeconds: options.timeoutSeconds, maxSilentSeconds: options.maxSilentSeconds,
        onLog: options.onLog ? (chunk) => options.onLog!(drvPath, chunk) : undefined
      })
      options.onEvent?.({ type: "built", drvPath, outputs: Object.fromEntries(Object.entries(node.outputs).map(([name, path]) => [name, print(path)])) })
      return "built" as const
    }))
  }).pipe(
    Effect.tapError((e) => Effect.sync(() => {
      if (!isDependencyFailure(e)) options.onEvent?.({ type: "failed", drvPath: print(node.drvPath), message: e.message })
    })),
    Effect.onExit((exit) => Effect.andThen(
      Effect.sync(() => { if (Exit.isSuccess(exit) && rootKeys.has(node.key)) options.onResult?.(resultOf(node.key, exit.value)) }),
      Deferred.done(done.get(node.key)!, exit)))
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
    return [n.key, Exit.isSuccess(exit) ? exit.value : "built"] as const
  }))
  return roots.map((root) => resultOf(StorePath.baseName(root), statusOf.get(StorePath.baseName(root)) ?? "already-valid"))
})
