/**
 * Scripted pipelines: a TypeScript module whose default export is an Effect program (or a function
 * of the command-line arguments returning one) that needs store services. `b3 run PIPELINE.ts
 * --store URI --cache URI` runs it with these services:
 *
 *   StoreRead, StoreWrite, StoreBuild   the --store store (writing/building only if it can)
 *   Cache                               the --cache store: `{ read, write? }`, e.g. a binary cache
 *   FileSystem, Path, …                 Node's platform services
 *
 * ```ts
 * import { Effect } from "effect"
 * import { Cache, copyPaths, requireWrite, StoreRead, StoreWrite } from "b3"
 * export default Effect.gen(function*() {
 *   const info = yield* (yield* StoreWrite).addText("hello.txt", "hello\n")
 *   const cache = yield* Cache
 *   yield* copyPaths(yield* StoreRead, { read: cache.read, write: yield* requireWrite(cache) }, [info.path])
 * })
 * ```
 *
 * A service the run cannot give (StoreWrite of a read-only store, Cache without --cache) fails
 * the pipeline with `ServiceUnavailable` when it is first asked for, saying which flag to change.
 */
import { Cause, Context, Effect, Layer, Logger, type LogLevel, Option, References, Schema } from "effect"
import type { NodeServices } from "@effect/platform-node/NodeServices"
import * as NodeServicesLayer from "@effect/platform-node/NodeServices"
import { pathToFileURL } from "node:url"
import type { StoreContext } from "../services/registry.ts"
import { StoreBuild } from "../services/store-build.ts"
import { StoreRead, type StoreReadApi } from "../services/store-read.ts"
import { StoreWrite, type StoreWriteApi } from "../services/store-write.ts"
import { builtinRegistry } from "./registry.ts"
import { loadPlugins, withPlugins } from "./plugins.ts"
import { openStore, StoreRegistry } from "../services/registry.ts"
import { importModule } from "../io/import-module.ts"

/** A second store a pipeline works with, typically the binary cache it pushes to or pulls from. */
export interface CacheApi {
  readonly read: StoreReadApi
  /** Absent for a read-only cache; `requireWrite(cache)` turns that into a typed error. */
  readonly write?: StoreWriteApi | undefined
}

export class Cache extends Context.Service<Cache, CacheApi>()("b3/Cache") {}

/** Everything `b3 run` provides to a pipeline. */
export type PipelineServices = StoreRead | StoreWrite | StoreBuild | Cache | NodeServices

/** What a pipeline module exports by default. */
export type Pipeline<A = unknown, E = unknown> =
  | Effect.Effect<A, E, PipelineServices>
  | ((args: ReadonlyArray<string>) => Effect.Effect<A, E, PipelineServices>)

/** The pipeline asked for a service this run does not provide. */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  service: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `the pipeline needs ${this.service}, but ${this.reason}` }
}

/** The pipeline module is missing, fails to load, or exports no program. */
export class BadPipeline extends Schema.TaggedError<BadPipeline>()("BadPipeline", {
  pipeline: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `cannot run '${this.pipeline}': ${this.reason}` }
}

export interface PipelineOptions {
  /** The pipeline module's path. */
  readonly pipeline: string
  readonly store: string
  readonly cache?: string | undefined
  readonly args: ReadonlyArray<string>
  readonly quiet: boolean
  readonly verbose: boolean
  /** Plugins (package names or module paths) whose store types the run adds to the built-in ones. */
  readonly plugins?: ReadonlyArray<string> | undefined
}

/** A second store as a pipeline's `Cache`: reading, and writing if it can. */
export const cacheOf = (cache: StoreContext): CacheApi =>
  ({ read: Context.get(cache, StoreRead), write: Option.getOrUndefined(Context.getOption(cache, StoreWrite)) })

/** The services of the --store store and the --cache store, as far as they have them. */
export const pipelineContext = (store: StoreContext, cache: StoreContext | undefined) =>
  (cache === undefined ? store : Context.add(store, Cache, cacheOf(cache))) as Context.Context<StoreRead | StoreWrite | StoreBuild | Cache>

const unavailableBecause = (key: string, options: PipelineOptions): string | undefined => {
  switch (key) {
    case StoreWrite.key: return `the store '${options.store}' is read-only (pass a writable --store)`
    case StoreBuild.key: return `the store '${options.store}' cannot build (pass a local store as --store)`
    case Cache.key: return "no cache was given (pass --cache URI)"
  }
  return undefined
}

/** A missing-service defect (the pipeline asked for what this run lacks) as a typed error. */
const missingService = (cause: Cause.Cause<unknown>, options: PipelineOptions): ServiceUnavailable | undefined => {
  for (const reason of cause.reasons) {
    if (!Cause.isDieReason(reason) || !(reason.defect instanceof Error)) continue
    const match = /^Service not found: (.+)$/.exec(reason.defect.message)
    if (!match) continue
    const key = match[1]!
    return new ServiceUnavailable({
      service: key.replace(/^b3\//, ""),
      reason: unavailableBecause(key, options) ?? "b3 run does not provide it (provide it in the pipeline with Effect.provide)"
    })
  }
  return undefined
}

const format = (message: unknown): string =>
  (Array.isArray(message) ? message : [message]).map((part) => typeof part === "string" ? part : JSON.stringify(part)).join(" ")

/** Log lines on stderr (stdout is the pipeline's result): plain for info, prefixed otherwise. */
const stderrLogger = Logger.make(({ logLevel, message }) => {
  const prefix = logLevel === "Info" ? "" : `${logLevel.toLowerCase()}: `
  process.stderr.write(`${prefix}${format(message)}\n`)
})

const isEffect = (value: unknown): value is Effect.Effect<unknown, unknown, PipelineServices> => Effect.isEffect(value)

/** Imports the pipeline module and returns its program for these arguments. */
export const loadPipeline = (file: string, args: ReadonlyArray<string>) => Effect.gen(function*() {
  const module = yield* Effect.tryPromise({
    try: () => importModule<Record<string, unknown>>(pathToFileURL(file).href),
    catch: (e) => new BadPipeline({ pipeline: file, reason: `loading it failed: ${e instanceof Error ? e.message : String(e)}` })
  })
  const exported = module.default
  const program = typeof exported === "function" && !isEffect(exported) ? (exported as (args: ReadonlyArray<string>) => unknown)(args) : exported
  if (!isEffect(program)) {
    return yield* new BadPipeline({ pipeline: file, reason: "its default export is not an Effect program (export default Effect.gen(function*() { … }))" })
  }
  return program
})

/**
 * Runs a pipeline with its stores opened from URIs; the stores are closed when it ends, whether it
 * succeeds, fails or is interrupted. Succeeds with the program's result.
 */
export const runPipeline = (options: PipelineOptions) => Effect.scoped(Effect.gen(function*() {
  const program = yield* loadPipeline(options.pipeline, options.args)
  const registry = Layer.succeed(StoreRegistry, withPlugins(builtinRegistry, yield* loadPlugins(options.plugins ?? [])))
  const store = yield* openStore(options.store).pipe(Effect.provide(registry))
  const cache = options.cache === undefined ? undefined : yield* openStore(options.cache).pipe(Effect.provide(registry))
  const level: LogLevel.LogLevel = options.quiet ? "Warn" : options.verbose ? "Debug" : "Info"
  return yield* program.pipe(
    Effect.provideContext(pipelineContext(store, cache)),
    Effect.catchCause((cause) => {
      const missing = missingService(cause, options)
      return missing ? Effect.fail(missing) : Effect.failCause(cause)
    }),
    Effect.provide(Layer.mergeAll(NodeServicesLayer.layer, Logger.layer([stderrLogger]))),
    Effect.provideService(References.MinimumLogLevel, level)
  )
}))

/** The result as text: strings as they are, a list of strings one per line, anything else as JSON. */
export const resultText = (value: unknown): string | undefined => {
  if (value === undefined) return undefined
  if (typeof value === "string") return value
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value.join("\n")
  return JSON.stringify(value, null, 2)
}
