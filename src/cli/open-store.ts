/**
 * Stores for commands, from store URIs through the built-in registry. Before any store is opened,
 * the configuration must be sound and a store must have been named: a malformed config file or a
 * missing `--store` is a usage error, never a silent fall back to the machine's /nix/store.
 */
import { Effect, Layer } from "effect"
import { loadPlugins, withPlugins } from "../compose/plugins.ts"
import { builtinRegistry } from "../compose/registry.ts"
import { buildingStoreLayer, openStore, storeLayer, StoreRegistry, writableStoreLayer } from "../services/registry.ts"
import { config } from "./config.ts"
import { UsageError } from "./output.ts"

/** Fails unless the configuration is sound and `uri` names a store. */
const checked = (uri: string): Effect.Effect<string, UsageError> => Effect.suspend(() => {
  const { problems } = config()
  if (problems.length > 0) return Effect.fail(new UsageError({ reason: `${problems.join("; ")} (fix or remove the file; b3 config show)` }))
  if (uri === "") {
    return Effect.fail(new UsageError({ reason: "no store given: pass --store URI (--store local for this machine's /nix/store, --store /tmp/r for a chroot store), or set B3_STORE or 'store' in b3.json" }))
  }
  return Effect.succeed(uri)
})

/** The built-in store types, and those of the plugins the configuration names (`plugins`, B3_PLUGINS). */
const registryLayer = Layer.effect(StoreRegistry, Effect.suspend(() => Effect.map(loadPlugins(config().plugins), (plugins) => withPlugins(builtinRegistry, plugins))))

/** The store a URI names as a layer: StoreRead, and at run time whatever else it can do. */
export const cliStore = (uri: string) => Layer.unwrap(Effect.map(checked(uri), storeLayer)).pipe(Layer.provide(registryLayer))

/** A store that must be writable; a read-only one fails with `Unsupported`. */
export const cliWritableStore = (uri: string) => Layer.unwrap(Effect.map(checked(uri), writableStoreLayer)).pipe(Layer.provide(registryLayer))

/** A store that must build; one that cannot fails with `Unsupported`. A registry other than the built-in one may be given (remote builders). */
export const cliBuildingStore = (uri: string, registry: Layer.Layer<StoreRegistry, unknown> = registryLayer) =>
  Layer.unwrap(Effect.map(checked(uri), buildingStoreLayer)).pipe(Layer.provide(registry))

/** Opens a store's services for the rest of the command, where a command meets two stores (copy). */
export const openCliStore = (uri: string) => Effect.flatMap(checked(uri), openStore).pipe(Effect.provide(registryLayer))
