import { Effect } from "effect"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import * as StorePath from "../../src/core/store-path.ts"
await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const store = yield* LocalStore.make({ root: process.argv[2]! })
  let t = performance.now()
  const all = yield* store.read.queryAllValidPaths!()
  console.log("list", all.length, (performance.now() - t).toFixed(0))
  t = performance.now()
  for (const p of all) store.db.queryPathInfo(p)
  console.log("db direct", (performance.now() - t).toFixed(0))
  t = performance.now()
  for (const p of all) yield* store.read.queryPathInfo(p)
  console.log("effect sequential", (performance.now() - t).toFixed(0))
  t = performance.now()
  yield* Effect.forEach(all, (p) => store.read.queryPathInfo(p), { concurrency: 32 })
  console.log("forEach 32", (performance.now() - t).toFixed(0))
  t = performance.now()
  yield* Effect.forEach(all, (p) => store.read.queryPathInfo(p))
  console.log("forEach 1", (performance.now() - t).toFixed(0))
})))
