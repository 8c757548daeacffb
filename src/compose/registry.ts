/**
 * The built-in store schemes. Each backend's module is loaded when a store of its scheme is first
 * opened, so a command pays at start-up only for the backends it uses.
 */
import { Effect, Layer } from "effect"
import { makeRegistry, StoreRegistry, type StoreOpener } from "../services/registry.ts"
import { checkParams } from "../services/store-uri.ts"
import * as MemoryStore from "../layers/memory.ts"

const loadedOnUse = <M>(load: () => Promise<M>, opener: (module: M) => StoreOpener): StoreOpener => (uri) =>
  Effect.flatMap(Effect.promise(load), (module) => opener(module)(uri))

const memory: StoreOpener = (uri) => Effect.gen(function*() {
  yield* Effect.fromResult(checkParams(uri, ["store"]))
  const storeDir = uri.params.get("store")
  const store = MemoryStore.make(storeDir ? { storeDir } : {})
  return { read: store.read, write: store.write }
})

const local = loadedOnUse(() => import("../layers/local/opener.ts"), (m) => m.openLocalStore)
const file = loadedOnUse(() => import("../layers/binary-cache/openers.ts"), (m) => m.openFileCache)
const http = loadedOnUse(() => import("../layers/binary-cache/openers.ts"), (m) => m.openHttpCache)
const s3 = loadedOnUse(() => import("../layers/s3/opener.ts"), (m) => m.openS3Cache)
const ipfs = loadedOnUse(() => import("../layers/ipfs/opener.ts"), (m) => m.openIpfsStore)

export const builtinRegistry = makeRegistry({ local, memory, file, http, https: http, s3, ipfs })

/** Provides the built-in registry. */
export const registryLayer = Layer.succeed(StoreRegistry, builtinRegistry)
