/**
 * One registry maps store URI schemes to the layers that open them. The built-in schemes are
 * listed in src/compose/registry.ts; a plugin adds its own with `extendRegistry`.
 *
 * A scheme's opener gives the store's layer. Its type promises `StoreRead`; what else the store
 * can do (`StoreWrite`, `BuildHost`, `BuildLogs`, `StoreMaintenance`) is in the context it builds,
 * known at run time, because one scheme can open stores of different capabilities (an HTTP cache
 * with `read-only=true`, an IPFS root opened by CID). `openStore` adds `StoreBuild` to stores that
 * can host builds, from the registry's builder. `writableStoreLayer` and `buildingStoreLayer` turn a
 * missing capability into a typed `Unsupported` error and then provide the services statically;
 * programs that know their backend use the backend's own layer and get the check at compile time.
 */
import { Context, Effect, Layer, Option, Result, type Scope } from "effect"
import { BuildHost } from "./build-host.ts"
import { BuildLogs, type BuildLogsApi } from "./build-logs.ts"
import { StoreBuild, type StoreBuildApi } from "./store-build.ts"
import { BadStoreUri, Unsupported, type StoreError } from "./store-errors.ts"
import { StoreMaintenance, type StoreMaintenanceApi } from "./store-maintenance.ts"
import { StoreRead, type StoreReadApi } from "./store-read.ts"
import { parseStoreUri, type StoreUri } from "./store-uri.ts"
import { StoreWrite, type StoreWriteApi } from "./store-write.ts"

/** The services a store opened from a URI may provide (StoreRead always). */
export type StoreServices = StoreRead | StoreWrite | StoreBuild | BuildHost | BuildLogs | StoreMaintenance

/** An opened store: StoreRead, and at run time whichever other `StoreServices` it has. */
export type StoreContext = Context.Context<StoreRead>

/** The layer of the store a URI names. */
export type StoreOpener = (uri: StoreUri) => Layer.Layer<StoreRead, StoreError | BadStoreUri>

/** What makes a store that hosts builds (`BuildHost`) a building one: the builder with its sandbox. */
export type BuilderLayer = Layer.Layer<StoreBuild, never, StoreRead | StoreWrite | BuildHost>

export interface Registry {
  readonly schemes: ReadonlyMap<string, StoreOpener>
  /** Adds `StoreBuild` to opened stores that provide `BuildHost` and `StoreWrite`; none: no store builds. */
  readonly builder?: BuilderLayer | undefined
}

export const makeRegistry = (entries: Record<string, StoreOpener>, builder?: BuilderLayer): Registry =>
  ({ schemes: new Map(Object.entries(entries)), builder })

export const extendRegistry = (registry: Registry, scheme: string, opener: StoreOpener): Registry =>
  ({ schemes: new Map([...registry.schemes, [scheme, opener]]), builder: registry.builder })

/** The registry in effect; provide a different one to add or replace schemes. */
export class StoreRegistry extends Context.Service<StoreRegistry, Registry>()("b3/StoreRegistry") {}

const has = (context: StoreContext, key: Context.Key<any, any>) => Option.isSome(Context.getOption(context, key))

/** Opens the store a URI names, for the lifetime of the scope: its services. */
export const openStore = (uri: string): Effect.Effect<StoreContext, StoreError | BadStoreUri, Scope.Scope | StoreRegistry> =>
  Effect.gen(function*() {
    const registry = yield* StoreRegistry
    const parsed = parseStoreUri(uri)
    if (Result.isFailure(parsed)) return yield* parsed.failure
    const opener = registry.schemes.get(parsed.success.scheme)
    if (!opener) {
      return yield* new BadStoreUri({ uri, reason: `unknown store type '${parsed.success.scheme}' (known: ${[...registry.schemes.keys()].sort().join(", ")})` })
    }
    // fresh: every store opened is its own, with its own builder (a memo map in the context, as in a
    // daemon that opens the store again, would otherwise hand the second store the first one's builder)
    const context = yield* Layer.build(Layer.fresh(opener(parsed.success)))
    if (!registry.builder || has(context, StoreBuild) || !has(context, BuildHost) || !has(context, StoreWrite)) return context
    const builder = yield* Layer.build(Layer.fresh(registry.builder)).pipe(
      Effect.provideContext(context as Context.Context<StoreRead | StoreWrite | BuildHost>))
    return Context.merge(context, builder)
  })

const readOnly = "writing (it is read-only)"

const capability = <I, S>(key: Context.Key<I, S>, operation: string) => (context: StoreContext): Effect.Effect<S, Unsupported> =>
  Option.match(Context.getOption(context, key), {
    onNone: () => Effect.fail(new Unsupported({ store: Context.get(context, StoreRead).uri, operation })),
    onSome: Effect.succeed
  })

/** A store's StoreWrite: of an opened store, or of a pair like a pipeline's `Cache`; a read-only one fails with `Unsupported`. */
export const requireWrite = (
  store: StoreContext | { readonly read: StoreReadApi; readonly write?: StoreWriteApi | undefined }
): Effect.Effect<StoreWriteApi, Unsupported> =>
  Context.isContext(store) ? capability(StoreWrite, readOnly)(store)
    : store.write ? Effect.succeed(store.write) : Effect.fail(new Unsupported({ store: store.read.uri, operation: readOnly }))
export const requireBuild: (store: StoreContext) => Effect.Effect<StoreBuildApi, Unsupported> = capability(StoreBuild, "building")
export const requireLogs: (store: StoreContext) => Effect.Effect<BuildLogsApi, Unsupported> = capability(BuildLogs, "build logs")
export const requireMaintenance = (store: StoreContext, operation: string): Effect.Effect<StoreMaintenanceApi, Unsupported> =>
  capability(StoreMaintenance, operation)(store)

/** The store a URI names, as a layer (StoreRead statically; the rest at run time). */
export const storeLayer = (uri: string): Layer.Layer<StoreRead, StoreError | BadStoreUri, StoreRegistry> =>
  Layer.effectContext(openStore(uri))

/** A store that must be writable; a read-only one fails with `Unsupported`. */
export const writableStoreLayer = (uri: string): Layer.Layer<StoreRead | StoreWrite, StoreError | BadStoreUri, StoreRegistry> =>
  Layer.effectContext(Effect.tap(openStore(uri), requireWrite) as Effect.Effect<Context.Context<StoreRead | StoreWrite>, StoreError | BadStoreUri, Scope.Scope | StoreRegistry>)

/** A store that must build (and so write); one that cannot fails with `Unsupported`. */
export const buildingStoreLayer = (uri: string): Layer.Layer<StoreRead | StoreWrite | StoreBuild, StoreError | BadStoreUri, StoreRegistry> =>
  Layer.effectContext(Effect.tap(openStore(uri), (store) => Effect.andThen(requireWrite(store), requireBuild(store))) as
    Effect.Effect<Context.Context<StoreRead | StoreWrite | StoreBuild>, StoreError | BadStoreUri, Scope.Scope | StoreRegistry>)

/** The context of a store whose writing is known only at run time (a cache opened read-only or not). */
export const readWriteContext = (read: StoreReadApi, write: StoreWriteApi | undefined): StoreContext =>
  write === undefined ? Context.make(StoreRead, read) : Context.make(StoreRead, read).pipe(Context.add(StoreWrite, write))

/**
 * The layer `opener` gives for `uri`, typed with the services the caller knows such a store to
 * have (a backend's own typed layers are made this way: a file cache always writes).
 */
export const openerLayer = <ROut extends StoreServices>(opener: StoreOpener, uri: string): Layer.Layer<ROut, StoreError | BadStoreUri> => {
  const parsed = parseStoreUri(uri)
  return Result.isFailure(parsed) ? Layer.effectContext(Effect.fail(parsed.failure)) : opener(parsed.success) as Layer.Layer<any, StoreError | BadStoreUri>
}
