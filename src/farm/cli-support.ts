/**
 * What the CLI's farm commands run (loaded on first use, so other commands do not pay for the
 * cluster and PostgreSQL client at start-up).
 */
import { Context, Effect, Layer } from "effect"
import type * as Signature from "../core/signature.ts"
import type * as StorePath from "../core/store-path.ts"
import { registryLayer } from "../compose/registry.ts"
import { buildingStoreLayer, writableStoreLayer } from "../services/registry.ts"
import { StoreBuild } from "../services/store-build.ts"
import { StoreRead } from "../services/store-read.ts"
import { StoreWrite } from "../services/store-write.ts"
import { clientClusterLayer, dialectOf, runnerClusterLayer, sharedCacheUri, sqlLayer } from "./cluster.ts"
import { runnerLayer, type RunnerConfig } from "./runner.ts"
import { farmStatus, formatStatus } from "./status.ts"
import { connect } from "./store-build.ts"
import { attach, submit, type SubmitOptions } from "./submit.ts"
import { FarmNotReady } from "./store-build.ts"

export { formatStatus }

const checkUrl = (farm: string) => dialectOf(farm) === undefined
  ? Effect.fail(new FarmNotReady({ farm, reason: "not a farm database URL (postgres://USER@HOST:PORT/DB or sqlite:PATH)" }))
  : Effect.void

export interface RunnerArgs extends Omit<RunnerConfig, "cacheUri"> {
  readonly farm: string
  readonly cache: string
  readonly store: string
  readonly host: string
  readonly port: number
}

/** Runs a runner until interrupted (SIGINT/SIGTERM): its running jobs go back to the queue. */
export const runRunner = (args: RunnerArgs) => Effect.scoped(Effect.gen(function*() {
  yield* checkUrl(args.farm)
  const local = yield* Layer.build(buildingStoreLayer(args.store).pipe(Layer.provide(registryLayer)))
  const cache = yield* Layer.build(writableStoreLayer(sharedCacheUri(args.cache)).pipe(Layer.provide(registryLayer)))
  const stores = {
    local: { read: Context.get(local, StoreRead), write: Context.get(local, StoreWrite), build: Context.get(local, StoreBuild) },
    cache: { read: Context.get(cache, StoreRead), write: Context.get(cache, StoreWrite) }
  }
  const { farm: url, cache: cacheUri, store: _s, host, port, ...config } = args
  // a test hook: the runner "loses" the wake-ups of its first N finished jobs (src/farm/runner.ts)
  const dropWakeups = Number(process.env.B3_FARM_TEST_DROP_WAKEUPS ?? "0") || 0
  yield* Layer.launch(runnerLayer({ ...config, cacheUri, dropWakeups }, stores).pipe(Layer.provide(runnerClusterLayer(url, host, port))))
}))

export interface ClientArgs {
  readonly farm: string
  readonly store: string
  readonly cache?: string | undefined
  readonly trustedKeys: ReadonlyArray<Signature.PublicKey>
}

const withClient = <A, E, R>(farm: string, f: Effect.Effect<A, E, R>) =>
  Effect.flatMap(checkUrl(farm), () => f.pipe(Effect.provide(clientClusterLayer(farm))))

/** `b3 build --farm`: submits targets already valid in the local store. */
export const runSubmit = (
  args: ClientArgs,
  local: { readonly read: SubmitOptions["local"]["read"]; readonly write: SubmitOptions["local"]["write"] },
  drvPaths: ReadonlyArray<StorePath.StorePath>,
  options: Omit<SubmitOptions, "local" | "cache" | "trustedKeys">
) => withClient(args.farm, Effect.scoped(Effect.gen(function*() {
  const farm = yield* connect(args.farm, { cache: args.cache, trustedKeys: args.trustedKeys })
  return yield* submit(drvPaths, { ...options, local, cache: farm.cache, trustedKeys: farm.trustedKeys })
})))

/** `b3 farm attach`: watches a submission to its end and substitutes its outputs. */
export const runAttach = (
  args: ClientArgs,
  submission: string,
  options: Omit<SubmitOptions, "local" | "cache" | "trustedKeys" | "submission" | "detach">
) => withClient(args.farm, Effect.scoped(Effect.gen(function*() {
  const local = yield* Layer.build(writableStoreLayer(args.store).pipe(Layer.provide(registryLayer)))
  const farm = yield* connect(args.farm, { cache: args.cache, trustedKeys: args.trustedKeys })
  return yield* attach(submission, { ...options, local: { read: Context.get(local, StoreRead), write: Context.get(local, StoreWrite) }, cache: farm.cache, trustedKeys: farm.trustedKeys })
})))

/** `b3 farm status`: reads the farm's tables only (no cluster membership needed). */
export const runStatus = (farm: string) => Effect.flatMap(checkUrl(farm), () =>
  farmStatus().pipe(Effect.provide(sqlLayer(farm))))
