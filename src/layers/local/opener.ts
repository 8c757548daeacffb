/** The `local` store URI opener (`local`, `local?root=DIR&store=…&state=…&log=…`, or a bare directory). */
import { Effect, Layer } from "effect"
import type { StoreOpener } from "../../services/registry.ts"
import { BadStoreUri } from "../../services/store-errors.ts"
import { checkParams } from "../../services/store-uri.ts"
import * as LocalStore from "./local-store.ts"

export const openLocalStore: StoreOpener = (uri) => Layer.unwrap(Effect.gen(function*() {
  yield* Effect.fromResult(checkParams(uri, ["root", "store", "state", "log"]))
  // An empty value must not fall back to the default (root= would mean the machine's /nix/store).
  for (const name of ["root", "store", "state", "log"]) {
    if (uri.params.get(name) === "") return yield* new BadStoreUri({ uri: uri.raw, reason: `${name}= needs a directory` })
  }
  const root = uri.params.get("root")
  const storeDir = uri.params.get("store")
  const stateDir = uri.params.get("state")
  const logDir = uri.params.get("log")
  return LocalStore.layer({ uri: uri.raw, ...(root ? { root } : {}), ...(storeDir ? { storeDir } : {}), ...(stateDir ? { stateDir } : {}), ...(logDir ? { logDir } : {}) })
}))
