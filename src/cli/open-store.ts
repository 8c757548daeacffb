/** Stores for commands, from store URIs through the built-in registry. */
import { Effect, Layer } from "effect"
import { registryLayer } from "../compose/registry.ts"
import { buildingStoreLayer, openStore, storeLayer, writableStoreLayer } from "../services/registry.ts"

/** The store a URI names as a layer: StoreRead, and at run time whatever else it can do. */
export const cliStore = (uri: string) => storeLayer(uri).pipe(Layer.provide(registryLayer))

/** A store that must be writable; a read-only one fails with `Unsupported`. */
export const cliWritableStore = (uri: string) => writableStoreLayer(uri).pipe(Layer.provide(registryLayer))

/** A store that must build; one that cannot fails with `Unsupported`. */
export const cliBuildingStore = (uri: string) => buildingStoreLayer(uri).pipe(Layer.provide(registryLayer))

/** Opens a store's services for the rest of the command, where a command meets two stores (copy). */
export const openCliStore = (uri: string) => openStore(uri).pipe(Effect.provide(registryLayer))
