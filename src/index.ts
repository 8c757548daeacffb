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
export type { PathInfo } from "./services/path-info.ts"
export * from "./services/store-errors.ts"
export type { StoreError } from "./services/store-errors.ts"
export { computeClosure, topoSortInfos } from "./services/closure.ts"
export { copyPaths, type CopyOptions, type CopyEvent, type CopyResult } from "./services/copy.ts"
export { openStore, requireWrite, requireBuild, StoreRegistry, extendRegistry, makeRegistry, type OpenedStore, type StoreOpener } from "./services/registry.ts"
export { parseStoreUri, type StoreUri } from "./services/store-uri.ts"

// layers
export * as MemoryStore from "./layers/memory.ts"
export * as LocalStore from "./layers/local/local-store.ts"
export { builtinRegistry, registryLayer } from "./compose/registry.ts"
export { makeBinaryCacheStore, type BinaryCacheOptions } from "./layers/binary-cache/binary-cache-store.ts"
export { serveCache, type ServeOptions } from "./servers/http-cache.ts"

// pipelines (`b3 run`)
export { Cache, pipelineContext, runPipeline, ServiceUnavailable, BadPipeline, type CacheApi, type Pipeline, type PipelineServices, type PipelineOptions } from "./compose/pipeline.ts"
export { makeProgress, type Progress } from "./cli/progress.ts"
export { addDerivationClosure, addDerivations, buildDerivations } from "./cli/derivations.ts"
