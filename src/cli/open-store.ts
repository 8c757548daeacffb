/** Opening stores from CLI flags, with the built-in registry. */
import { Effect } from "effect"
import { registryLayer } from "../compose/registry.ts"
import { openStore, requireWrite } from "../services/registry.ts"

/** Opens a store for the rest of the command (closed when the command's scope ends). */
export const openCliStore = (uri: string) => openStore(uri).pipe(Effect.provide(registryLayer))

/** Opens a store that must be writable; a read-only one fails with `Unsupported`. */
export const openWritableStore = (uri: string) => Effect.gen(function*() {
  const store = yield* openCliStore(uri)
  const write = yield* requireWrite(store)
  return { store, write }
})
