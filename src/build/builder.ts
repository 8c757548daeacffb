/**
 * The builder as a layer: `StoreBuild` for any store that can host builds (`BuildHost`), running
 * them in whatever `Sandbox` it is given. Caches and remote stores provide no `BuildHost`, so
 * asking them to build does not compile; tests give it the in-memory store and a fake sandbox.
 */
import { Effect, Layer, Result } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as StorePath from "../core/store-path.ts"
import { StoreRead } from "../services/store-read.ts"
import { BuildFailed, StoreBuild, type StoreBuildApi } from "../services/store-build.ts"
import { buildDerivation } from "./build-derivation.ts"
import { runPostBuildHook } from "./post-build-hook.ts"
import { realise, type RealiseServices } from "./realise.ts"

/** Provides StoreBuild from a store (StoreRead, StoreWrite, BuildHost) and a Sandbox. */
export const layer: Layer.Layer<StoreBuild, never, RealiseServices> = Layer.effect(StoreBuild, Effect.gen(function*() {
  const context = yield* Effect.context<RealiseServices>()
  return StoreBuild.of({
    buildDerivations: (drvPaths, options) => realise(drvPaths, options).pipe(Effect.provideContext(context)),
    buildBasic: (drvPath, drv, options) => buildBasic(drvPath, drv, options).pipe(Effect.provideContext(context))
  })
}))

/**
 * One derivation given whole (Nix's BuildDerivation, as remote builders send it): no input
 * derivations, its sources (the whole input closure) already valid, outputs at known paths.
 */
const buildBasic = (...[drvPath, drv, options = {}]: Parameters<NonNullable<StoreBuildApi["buildBasic"]>>) => Effect.gen(function*() {
  const store = yield* StoreRead
  const printed = StorePath.print(drvPath, store.storeDir)
  const fail = (reason: string) => new BuildFailed({ drvPath: printed, reason, logTail: "" })
  const outputs: Record<string, StorePath.StorePath> = {}
  for (const [name, output] of drv.outputs) {
    const path = Derivation.outputPath(output)
    if (path === undefined) return yield* fail(`output '${name}' has no known path (floating content-addressed and impure derivations are not supported)`)
    const parsed = StorePath.parse(path, store.storeDir)
    if (Result.isFailure(parsed)) return yield* fail(parsed.failure.message)
    outputs[name] = parsed.success
  }
  const inputs: Array<StorePath.StorePath> = []
  for (const src of drv.inputSrcs) {
    const parsed = StorePath.parse(src, store.storeDir)
    if (Result.isFailure(parsed)) return yield* fail(parsed.failure.message)
    inputs.push(parsed.success)
  }
  const missing = inputs.length - (yield* store.queryValidPaths(inputs)).length
  if (missing > 0) return yield* fail(`${missing} of its inputs are not valid in the store`)
  if ((yield* store.queryValidPaths(Object.values(outputs))).length === Object.keys(outputs).length) {
    return { outputs, status: "already-valid" as const }
  }
  options.onEvent?.({ type: "building", drvPath: printed })
  yield* buildDerivation({
    drvPath, drv, knownOutputs: new Map(Object.entries(outputs)), inputs,
    cores: options.cores, timeoutSeconds: options.timeoutSeconds, maxSilentSeconds: options.maxSilentSeconds, sandboxPaths: options.sandboxPaths,
    onLog: options.onLog ? (chunk) => options.onLog!(printed, chunk) : undefined
  }).pipe(Effect.tapError((e) => Effect.sync(() => options.onEvent?.({ type: "failed", drvPath: printed, message: e.message }))))
  options.onEvent?.({ type: "built", drvPath: printed, outputs: Object.fromEntries(Object.entries(outputs).map(([n, p]) => [n, StorePath.print(p, store.storeDir)])) })
  yield* runPostBuildHook(options, drvPath, Object.values(outputs), store.storeDir)
  return { outputs, status: "built" as const }
})
