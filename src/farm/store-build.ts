/**
 * `StoreBuild` backed by the farm: `buildDerivations` submits the derivations (valid in the local
 * store) to the farm, reports the farm's events as build events, and substitutes the outputs into
 * the local store — so a program builds locally or on the farm by swapping this layer for the
 * local builder's.
 *
 * The shared cache and the farm's public key are read from the farm's database (runners publish
 * them) unless given.
 */
import { Context, Effect, Layer, Result, Schema } from "effect"
import type { SqlClient } from "effect/sql"
import type { WorkflowEngine } from "effect/workflow/WorkflowEngine"
import * as Signature from "../core/signature.ts"
import * as StorePath from "../core/store-path.ts"
import { registryLayer } from "../compose/registry.ts"
import { writableStoreLayer } from "../services/registry.ts"
import { BuildFailed, StoreBuild, type BuildEvent, type BuildResult, type StoreBuildApi } from "../services/store-build.ts"
import { Unsupported } from "../services/store-errors.ts"
import { StoreRead, type StoreReadApi } from "../services/store-read.ts"
import { StoreWrite, type StoreWriteApi } from "../services/store-write.ts"
import { clientClusterLayer, sharedCacheUri } from "./cluster.ts"
import * as Db from "./db.ts"
import { submit, type FarmEvent, type SubmitOptions } from "./submit.ts"
import { FarmBuildFailed } from "./workflow.ts"

export class FarmNotReady extends Schema.TaggedError<FarmNotReady>()("FarmNotReady", { farm: Schema.String, reason: Schema.String }) {
  override get message() { return `farm ${this.farm}: ${this.reason}` }
}

export interface FarmConnection {
  readonly cache: { readonly read: StoreReadApi; readonly write: StoreWriteApi }
  readonly trustedKeys: ReadonlyArray<Signature.PublicKey>
}

/** Opens the farm's shared cache (given, or as the runners published it) and its trusted keys. */
export const connect = (farm: string, options: { readonly cache?: string | undefined; readonly trustedKeys?: ReadonlyArray<Signature.PublicKey> | undefined } = {}) =>
  Effect.gen(function*() {
    yield* Db.migrate
    const cacheUri = options.cache ?? (yield* Db.getConfig("cache"))
    if (!cacheUri) return yield* new FarmNotReady({ farm, reason: "no shared cache known (start a runner first, or pass --cache)" })
    const cache = yield* Layer.build(writableStoreLayer(sharedCacheUri(cacheUri)).pipe(Layer.provide(registryLayer)))
    const published = yield* Db.getConfig("public-key")
    const trustedKeys = [...(options.trustedKeys ?? [])]
    if (published) {
      const key = Signature.parsePublicKey(published)
      if (Result.isSuccess(key)) trustedKeys.push(key.success)
    }
    return { cache: { read: Context.get(cache, StoreRead), write: Context.get(cache, StoreWrite) }, trustedKeys } satisfies FarmConnection
  })

/** Farm events as the local builder's events, so the same progress display serves both. */
export const toBuildEvent = (event: FarmEvent): BuildEvent | undefined => {
  switch (event.type) {
    case "building": return { type: "building", drvPath: event.drvPath }
    case "built": return { type: "built", drvPath: event.drvPath, outputs: {} }
    case "cached": return { type: "substituted", drvPath: event.drvPath, from: "farm cache" }
    case "failed": return { type: "failed", drvPath: event.drvPath, message: event.message ?? "failed" }
    default: return undefined
  }
}

const asBuildFailed = (e: FarmBuildFailed) => new BuildFailed({ drvPath: e.drvPath, reason: e.reason, logTail: e.logTail })

/** A `StoreBuild` over a connected farm, building into `local`. */
export const makeFarmBuilder = (
  local: { readonly read: StoreReadApi; readonly write: StoreWriteApi },
  farm: FarmConnection,
  extra: Partial<Pick<SubmitOptions, "submission" | "pollMs">> = {}
): Effect.Effect<StoreBuildApi, never, WorkflowEngine | SqlClient.SqlClient> => Effect.map(Effect.context<WorkflowEngine | SqlClient.SqlClient>(), (context) => ({
  buildDerivations: (drvPaths, options = {}) => Effect.gen(function*() {
    // the runners build, on other machines: a hook meant to run after each build has nowhere to run here
    if (options.postBuildHook) return yield* new Unsupported({ store: `farm (cache ${farm.cache.read.uri})`, operation: "post-build-hook (set it on the cache's side instead)" })
    const encoder = new TextEncoder()
    const { results } = yield* submit(drvPaths, {
      local, cache: farm.cache, trustedKeys: [...farm.trustedKeys, ...(options.trustedKeys ?? [])], ...extra,
      onPlan: (plan) => options.onEvent?.({ type: "plan", build: plan.derivations.filter((d) => !plan.finished.includes(d)), valid: plan.finished }),
      onEvent: (event) => { const e = toBuildEvent(event); if (e) options.onEvent?.(e) },
      ...(options.onLog ? { onLog: (drvPath: string, text: string) => options.onLog!(drvPath, encoder.encode(text)) } : {})
    })
    const storeDir = local.read.storeDir
    return results.map((r): BuildResult => ({
      drvPath: StorePath.parse(r.drvPath, storeDir).pipe(Result.getOrThrow),
      outputs: Object.fromEntries(Object.entries(r.outputs).map(([name, path]) => [name, StorePath.parse(path, storeDir).pipe(Result.getOrThrow)])),
      status: r.status === "built" ? "built" : "substituted"
    }))
  }).pipe(
    Effect.catchTag("FarmBuildFailed", (e) => Effect.fail(asBuildFailed(e))),
    Effect.mapError((e) => (e instanceof BuildFailed || (e as { _tag?: string })._tag?.startsWith("Store") || (e as { _tag?: string })._tag === "PathNotValid"
      || (e as { _tag?: string })._tag === "Unsupported" ? e : new BuildFailed({ drvPath: "", reason: (e as Error).message ?? String(e), logTail: "" })) as never),
    Effect.provideContext(context)
  )
}))

/**
 * `StoreBuild` on the farm at `farm` (a postgres:// or sqlite: URL), for the local store in the
 * context: a drop-in for the local builder's layer.
 */
export const layer = (farm: string, options: { readonly cache?: string; readonly trustedKeys?: ReadonlyArray<Signature.PublicKey> } = {}):
  Layer.Layer<StoreBuild, unknown, StoreRead | StoreWrite> =>
  Layer.effect(StoreBuild, Effect.gen(function*() {
    const local = { read: yield* StoreRead, write: yield* StoreWrite }
    const connection = yield* connect(farm, options)
    return yield* makeFarmBuilder(local, connection)
  })).pipe(Layer.provide(clientClusterLayer(farm)))
