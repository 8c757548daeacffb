/** The `local` store URI opener (`local`, `local?root=DIR&store=…&state=…`, or a bare directory): a local store that also builds. */
import { Effect } from "effect"
import { readBuildLog } from "../../build/build-log.ts"
import { makeLocalBuilder } from "../../build/local-builder.ts"
import type { StoreOpener } from "../../services/registry.ts"
import { checkParams } from "../../services/store-uri.ts"
import * as LocalStore from "./local-store.ts"

export const openLocalStore: StoreOpener = (uri) => Effect.gen(function*() {
  yield* Effect.fromResult(checkParams(uri, ["root", "store", "state"]))
  const root = uri.params.get("root")
  const storeDir = uri.params.get("store")
  const stateDir = uri.params.get("state")
  const store = yield* LocalStore.make({ ...(root ? { root } : {}), ...(storeDir ? { storeDir } : {}), ...(stateDir ? { stateDir } : {}) })
  return { read: store.read, write: store.write, maintenance: store.maintenance, build: makeLocalBuilder(store),
    buildLog: (drvPath) => readBuildLog(store.layout.logDir, drvPath) }
})
