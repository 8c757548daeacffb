/** The `local` store URI opener (`local`, `local?root=DIR&store=…&state=…`, or a bare directory). */
import { Effect, Layer } from "effect"
import type { StoreOpener } from "../../services/registry.ts"
import { checkParams } from "../../services/store-uri.ts"
import * as LocalStore from "./local-store.ts"

export const openLocalStore: StoreOpener = (uri) => Layer.unwrap(Effect.gen(function*() {
  yield* Effect.fromResult(checkParams(uri, ["root", "store", "state"]))
  const root = uri.params.get("root")
  const storeDir = uri.params.get("store")
  const stateDir = uri.params.get("state")
  return LocalStore.layer({ ...(root ? { root } : {}), ...(storeDir ? { storeDir } : {}), ...(stateDir ? { stateDir } : {}) })
}))
