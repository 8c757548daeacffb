/**
 * One registry maps store URI schemes to the layers that open them. The built-in schemes are
 * registered in src/layers/registry.ts; a plugin adds its own with `StoreRegistry.extend`.
 *
 * A store opened from a URI has its capabilities known only at run time (`write` and `build`
 * may be absent); `requireWrite` turns that into a typed `Unsupported` error. Programs that know
 * their backend statically use the backend's own layer instead and get the check at compile time.
 */
import { Context, Effect, Result, type Scope, type Stream } from "effect"
import { BadStoreUri, Unsupported } from "./store-errors.ts"
import type { StoreBuildApi } from "./store-build.ts"
import type { StoreMaintenanceApi } from "./store-maintenance.ts"
import type { StoreError } from "./store-errors.ts"
import type { StoreReadApi } from "./store-read.ts"
import { parseStoreUri, type StoreUri } from "./store-uri.ts"
import type { StoreWriteApi } from "./store-write.ts"

export interface OpenedStore {
  readonly read: StoreReadApi
  readonly write?: StoreWriteApi | undefined
  readonly build?: StoreBuildApi | undefined
  readonly maintenance?: StoreMaintenanceApi | undefined
  /** The build log of a derivation, for stores that keep logs (undefined result: no log). */
  readonly buildLog?: ((drvPath: string) => Stream.Stream<Uint8Array, Error> | undefined) | undefined
}

export type StoreOpener = (uri: StoreUri) => Effect.Effect<OpenedStore, StoreError | BadStoreUri, Scope.Scope>

export interface Registry {
  readonly schemes: ReadonlyMap<string, StoreOpener>
}

export const makeRegistry = (entries: Record<string, StoreOpener>): Registry => ({ schemes: new Map(Object.entries(entries)) })

export const extendRegistry = (registry: Registry, scheme: string, opener: StoreOpener): Registry =>
  ({ schemes: new Map([...registry.schemes, [scheme, opener]]) })

/** The registry in effect; provide a different one to add or replace schemes. */
export class StoreRegistry extends Context.Service<StoreRegistry, Registry>()("b3/StoreRegistry") {}

/** Opens the store a URI names, for the lifetime of the scope. */
export const openStore = (uri: string): Effect.Effect<OpenedStore, StoreError | BadStoreUri, Scope.Scope | StoreRegistry> =>
  Effect.gen(function*() {
    const registry = yield* StoreRegistry
    const parsed = parseStoreUri(uri)
    if (Result.isFailure(parsed)) return yield* parsed.failure
    const opener = registry.schemes.get(parsed.success.scheme)
    if (!opener) {
      return yield* new BadStoreUri({ uri, reason: `unknown store type '${parsed.success.scheme}' (known: ${[...registry.schemes.keys()].sort().join(", ")})` })
    }
    return yield* opener(parsed.success)
  })

export const requireWrite = (store: OpenedStore): Effect.Effect<StoreWriteApi, Unsupported> =>
  store.write ? Effect.succeed(store.write) : Effect.fail(new Unsupported({ store: store.read.uri, operation: "writing (it is read-only)" }))

export const requireBuild = (store: OpenedStore): Effect.Effect<StoreBuildApi, Unsupported> =>
  store.build ? Effect.succeed(store.build) : Effect.fail(new Unsupported({ store: store.read.uri, operation: "building" }))

export const requireMaintenance = (store: OpenedStore, operation: string): Effect.Effect<StoreMaintenanceApi, Unsupported> =>
  store.maintenance ? Effect.succeed(store.maintenance) : Effect.fail(new Unsupported({ store: store.read.uri, operation }))
