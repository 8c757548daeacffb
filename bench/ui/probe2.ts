import { Effect } from "effect"
import * as LocalStore from "../../src/layers/local/local-store.ts"
await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const store = yield* LocalStore.make({ root: process.argv[2]! })
  const all = yield* store.read.queryAllValidPaths!()
  for (let k = 0; k < 3; k++) { const t = performance.now(); for (const p of all) store.db.queryPathInfo(p); console.log("db direct", (performance.now() - t).toFixed(0)) }
})))
