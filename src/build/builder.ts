/**
 * The builder as a layer: `StoreBuild` for any store that can host builds (`BuildHost`), running
 * them in whatever `Sandbox` it is given. Caches and remote stores provide no `BuildHost`, so
 * asking them to build does not compile; tests give it the in-memory store and a fake sandbox.
 */
import { Effect, Layer } from "effect"
import { StoreBuild } from "../services/store-build.ts"
import { realise, type RealiseServices } from "./realise.ts"

/** Provides StoreBuild from a store (StoreRead, StoreWrite, BuildHost) and a Sandbox. */
export const layer: Layer.Layer<StoreBuild, never, RealiseServices> = Layer.effect(StoreBuild, Effect.gen(function*() {
  const context = yield* Effect.context<RealiseServices>()
  return StoreBuild.of({
    buildDerivations: (drvPaths, options) => realise(drvPaths, options).pipe(Effect.provideContext(context))
  })
}))
