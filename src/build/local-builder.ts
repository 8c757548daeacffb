/**
 * `StoreBuild` for a local store: derivations are realised with `realise` (substituters, then the
 * sandbox). As a layer it needs the local store's handle, because builds bind-mount store paths
 * from disk; caches and remote stores never provide it, so asking them to build does not compile.
 */
import { Effect, Layer } from "effect"
import { LocalStoreHandle, type LocalStore } from "../layers/local/local-store.ts"
import { StoreBuild, type StoreBuildApi } from "../services/store-build.ts"
import { realise } from "./realise.ts"

export const makeLocalBuilder = (store: LocalStore): StoreBuildApi => ({
  buildDerivations: (drvPaths, options) => realise(store, drvPaths, options)
})

/** Provides StoreBuild on top of a local store layer (`LocalStore.layer`). */
export const layer: Layer.Layer<StoreBuild, never, LocalStoreHandle> =
  Layer.effect(StoreBuild, Effect.gen(function*() { return makeLocalBuilder(yield* LocalStoreHandle) }))
