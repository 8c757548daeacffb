/** Opening stores from URIs in tests, through the built-in registry. */
import { Context, Effect, Option } from "effect"
import { builtinRegistry } from "../../src/compose/registry.ts"
import { openStore, StoreRegistry } from "../../src/services/registry.ts"
import { StoreRead } from "../../src/services/store-read.ts"
import { StoreWrite } from "../../src/services/store-write.ts"

/** A store's read and (if it can) write services, for the test's scope. */
export const open = (uri: string) => Effect.map(Effect.provideService(openStore(uri), StoreRegistry, builtinRegistry), (store) => ({
  read: Context.get(store, StoreRead),
  write: Option.getOrUndefined(Context.getOption(store, StoreWrite))
}))

/** A store that must be writable. */
export const openWritable = (uri: string) => Effect.flatMap(open(uri), (s) => s.write ? Effect.succeed({ read: s.read, write: s.write }) : Effect.die(`${uri} is not writable`))
