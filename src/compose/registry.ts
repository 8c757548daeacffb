/**
 * The built-in store schemes, and the builder that makes stores hosting builds (local stores)
 * building ones: src/build's scheduler running in the bubblewrap sandbox. Each backend's module,
 * and the builder with the sandbox, is loaded when first needed, so a command pays at start-up only
 * for what it uses.
 */
import { Context, Effect, Layer } from "effect"
import * as MemoryStore from "../layers/memory.ts"
import type { BuildHost } from "../services/build-host.ts"
import { makeRegistry, StoreRegistry, type BuilderLayer, type StoreOpener } from "../services/registry.ts"
import { StoreBuild } from "../services/store-build.ts"
import { StoreRead } from "../services/store-read.ts"
import { checkParams } from "../services/store-uri.ts"
import type { RemoteBuildersOptions } from "../layers/remote/remote-sandbox.ts"
import { StoreWrite } from "../services/store-write.ts"
import { pluginBlobStore, pluginScheme } from "./plugins.ts"

const loadedOnUse = <M>(load: () => Promise<M>, opener: (module: M) => StoreOpener): StoreOpener => (uri) =>
  Layer.unwrap(Effect.map(Effect.promise(load), (module) => opener(module)(uri)))

/** `memory://[?store=DIR]`: a fresh in-memory store (it hosts no builds: a sandbox needs store paths on disk). */
const memory: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  yield* Effect.fromResult(checkParams(uri, ["store"]))
  const storeDir = uri.params.get("store")
  const store = MemoryStore.make(storeDir ? { storeDir } : {})
  return MemoryStore.context(store).pipe(Context.pick(StoreRead, StoreWrite))
}))

const local = loadedOnUse(() => import("../layers/local/opener.ts"), (m) => m.openLocalStore)
const file = loadedOnUse(() => import("../layers/binary-cache/openers.ts"), (m) => m.openFileCache)
const http = loadedOnUse(() => import("../layers/binary-cache/openers.ts"), (m) => m.openHttpCache)
const chunkedFile = loadedOnUse(() => import("../layers/chunked/opener.ts"), (m) => m.openChunkedFile)
// In plugins (./plugins.ts): s3:// and the blobs of chunked+s3:// in @b3/s3, ipfs:// in @b3/ipfs.
const s3 = pluginScheme("@b3/s3", "s3")
const ipfs = pluginScheme("@b3/ipfs", "ipfs")
const chunkedS3 = pluginBlobStore("@b3/s3", "s3", (blobs) => loadedOnUse(() => import("../layers/chunked/opener.ts"), (m) => m.openChunkedOver(blobs)))
const chunkedHttp = loadedOnUse(() => import("../layers/chunked/opener.ts"), (m) => m.openChunkedHttp)
const daemon = loadedOnUse(() => import("../layers/daemon/opener.ts"), (m) => m.openDaemonStore)

/**
 * `StoreBuild` for a store that hosts builds: the scheduler (src/build) with the bubblewrap sandbox
 * (src/layers/sandbox), both loaded on the first build and living as long as the store.
 */
export const sandboxedBuilder: BuilderLayer = Layer.effect(StoreBuild, Effect.gen(function*() {
  const store = yield* Effect.context<StoreRead | StoreWrite | BuildHost>()
  const scope = yield* Effect.scope
  const builder = yield* Effect.cached(Effect.promise(() => Promise.all([import("../build/builder.ts"), import("../layers/sandbox/bubblewrap.ts")])).pipe(
    Effect.flatMap(([build, sandbox]) => Layer.buildWithScope(build.layer.pipe(Layer.provide(sandbox.layer)), scope)),
    Effect.provideContext(store),
    Effect.map(Context.get(StoreBuild))))
  return StoreBuild.of({
    buildDerivations: (drvPaths, options) => Effect.flatMap(builder, (b) => b.buildDerivations(drvPaths, options)),
    buildBasic: (drvPath, drv, options) => Effect.flatMap(builder, (b) => b.buildBasic!(drvPath, drv, options))
  })
}))

/**
 * `StoreBuild` that sends builds to remote machines (Nix's `builders`), over ssh and the serve
 * protocol, and builds in the local bubblewrap sandbox what they cannot take (when `localJobs` > 0).
 */
export const remoteBuilder = (options: RemoteBuildersOptions): BuilderLayer => Layer.effect(StoreBuild, Effect.gen(function*() {
  const store = yield* Effect.context<StoreRead | StoreWrite | BuildHost>()
  const scope = yield* Effect.scope
  const builder = yield* Effect.cached(Effect.promise(() => Promise.all([
    import("../build/builder.ts"), import("../layers/sandbox/bubblewrap.ts"), import("../layers/remote/remote-sandbox.ts")
  ])).pipe(
    Effect.flatMap(([build, sandbox, remote]) =>
      Layer.buildWithScope(build.layer.pipe(Layer.provide(remote.layer(options).pipe(Layer.provide(sandbox.layer)))), scope)),
    Effect.provideContext(store),
    Effect.map(Context.get(StoreBuild))))
  return StoreBuild.of({
    buildDerivations: (drvPaths, buildOptions) => Effect.flatMap(builder, (b) => b.buildDerivations(drvPaths, buildOptions)),
    buildBasic: (drvPath, drv, buildOptions) => Effect.flatMap(builder, (b) => b.buildBasic!(drvPath, drv, buildOptions))
  })
}))

export const builtinRegistry = makeRegistry({
  local, memory, file, http, https: http, s3, ipfs, daemon, unix: daemon,
  "chunked+file": chunkedFile, "chunked+s3": chunkedS3, "chunked+http": chunkedHttp, "chunked+https": chunkedHttp
}, sandboxedBuilder)

/** Provides the built-in registry. */
export const registryLayer = Layer.succeed(StoreRegistry, builtinRegistry)

/** The built-in registry whose building stores send builds to remote machines too. */
export const registryWithBuilders = (options: RemoteBuildersOptions) =>
  Layer.succeed(StoreRegistry, makeRegistry(Object.fromEntries(builtinRegistry.schemes), remoteBuilder(options)))
