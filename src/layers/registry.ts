/** The built-in store schemes. */
import { Effect, Layer } from "effect"
import { makeRegistry, StoreRegistry, type StoreOpener } from "../services/registry.ts"
import { readBuildLog } from "../build/build-log.ts"
import { makeLocalBuilder } from "../build/local-builder.ts"
import { checkParams } from "../services/store-uri.ts"
import { openFileCache, openHttpCache } from "./binary-cache/openers.ts"
import * as LocalStore from "./local/index.ts"
import * as MemoryStore from "./memory.ts"
import { openIpfsStore } from "./ipfs/opener.ts"
import { openS3Cache } from "./s3/opener.ts"

const local: StoreOpener = (uri) => Effect.gen(function*() {
  yield* Effect.fromResult(checkParams(uri, ["root", "store", "state"]))
  const root = uri.params.get("root")
  const storeDir = uri.params.get("store")
  const stateDir = uri.params.get("state")
  const store = yield* LocalStore.make({ ...(root ? { root } : {}), ...(storeDir ? { storeDir } : {}), ...(stateDir ? { stateDir } : {}) })
  return { read: store.read, write: store.write, maintenance: store.maintenance, build: makeLocalBuilder(store),
    buildLog: (drvPath) => readBuildLog(store.layout.logDir, drvPath) }
})

const memory: StoreOpener = (uri) => Effect.gen(function*() {
  yield* Effect.fromResult(checkParams(uri, ["store"]))
  const storeDir = uri.params.get("store")
  const store = MemoryStore.make(storeDir ? { storeDir } : {})
  return { read: store.read, write: store.write }
})

export const builtinRegistry = makeRegistry({ local, memory, file: openFileCache, http: openHttpCache, https: openHttpCache, s3: openS3Cache, ipfs: openIpfsStore })

/** Provides the built-in registry. */
export const registryLayer = Layer.succeed(StoreRegistry, builtinRegistry)
