/**
 * b3's programmatic API. Programs name the services they need (`StoreRead`, `StoreWrite`,
 * `StoreBuild`) and get them from a layer: `MemoryStore.layer()` in tests, `LocalStore.layer()`,
 * or any store URI through `openStore`.
 *
 * ```ts
 * import { Effect } from "effect"
 * import { MemoryStore, StoreRead, StoreWrite } from "b3"
 *
 * const program = Effect.gen(function*() {
 *   const write = yield* StoreWrite
 *   const read = yield* StoreRead
 *   const info = yield* write.addText("hello.txt", "hello\n")
 *   return yield* read.queryPathInfo(info.path)
 * })
 * Effect.runPromise(program.pipe(Effect.provide(MemoryStore.layer())))
 * ```
 */
// pure formats
export * as Hash from "./core/hash.ts"
export * as NixBase32 from "./core/nixbase32.ts"
export * as StorePath from "./core/store-path.ts"
export * as ContentAddress from "./core/content-address.ts"
export * as NarInfo from "./core/narinfo.ts"
export * as CacheInfo from "./core/cache-info.ts"
export * as Signature from "./core/signature.ts"
export * as Derivation from "./core/derivation/index.ts"
export * as Tree from "./nar/tree.ts"
export { decodeNar } from "./nar/decode.ts"
export { narFromPath } from "./nar/fs/dump-path.ts"

// services
export { StoreRead, type StoreReadApi } from "./services/store-read.ts"
export { StoreWrite, type StoreWriteApi, type AddPathOptions } from "./services/store-write.ts"
export { StoreBuild, BuildFailed, type StoreBuildApi, type BuildResult, type BuildOptions } from "./services/store-build.ts"
export type { PathInfo } from "./core/path-info.ts"
export * from "./services/store-errors.ts"
export type { StoreError } from "./services/store-errors.ts"
export { computeClosure, topoSortInfos } from "./services/closure.ts"
export { copyPaths, type CopyOptions, type CopyEvent, type CopyResult } from "./services/copy.ts"
export {
  openStore, storeLayer, writableStoreLayer, buildingStoreLayer, requireWrite, requireBuild, requireLogs, requireMaintenance,
  readWriteContext, StoreRegistry, extendRegistry, makeRegistry, type StoreContext, type StoreServices, type StoreOpener, type BuilderLayer, type Registry
} from "./services/registry.ts"
export { BuildHost, type BuildHostApi, type BuiltOutput, type BuiltPath, type BuildLogSink } from "./services/build-host.ts"
export { BuildLogs, type BuildLogsApi } from "./services/build-logs.ts"
export { Sandbox, type SandboxApi, type SandboxSpec, type SandboxResult } from "./services/sandbox.ts"
export { StoreMaintenance, type StoreMaintenanceApi, type VerifyReport, type GcResult } from "./services/store-maintenance.ts"
export { parseStoreUri, type StoreUri } from "./services/store-uri.ts"

// layers
export * as MemoryStore from "./layers/memory.ts"
export * as LocalStore from "./layers/local/local-store.ts"
export { builtinRegistry, registryLayer, sandboxedBuilder } from "./compose/registry.ts"
export { layer as BubblewrapSandbox } from "./layers/sandbox/bubblewrap.ts"
export { builderLayer, realise } from "./build/index.ts"
export { makeBinaryCacheStore, type BinaryCacheOptions } from "./layers/binary-cache/binary-cache-store.ts"
export { serveCache, type ServeOptions } from "./servers/http-cache.ts"

// pipelines (`b3 run`)
export { Cache, pipelineContext, runPipeline, ServiceUnavailable, BadPipeline, type CacheApi, type Pipeline, type PipelineServices, type PipelineOptions } from "./compose/pipeline.ts"
export { makeProgress, type Progress } from "./cli/progress.ts"
export { addDerivationClosure, addDerivations, buildDerivations } from "./build/derivation-closure.ts"
