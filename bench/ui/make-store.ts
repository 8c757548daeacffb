/**
 * Writes a generated closure (test/support/generated-closure.ts) into a local store:
 *   node bench/ui/make-store.ts PATHS STORE-ROOT   -> prints the root's store path
 */
import { Effect } from "effect"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import { planClosure, writeClosure } from "../../test/support/generated-closure.ts"

const n = Number(process.argv[2] ?? 20000)
const root = process.argv[3]
if (!root) throw new Error("usage: node bench/ui/make-store.ts PATHS STORE-ROOT")
const started = performance.now()
const paths = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const store = yield* LocalStore.make({ root })
  return yield* writeClosure(store.write, store.read.storeDir, planClosure(n))
})))
process.stderr.write(`${n} paths in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
console.log(paths[0])
