/**
 * Push store paths and everything they refer to from a store to a binary cache.
 *
 *   b3 run examples/push-to-cache.ts --store /tmp/r --cache 'file:///tmp/cache?secret-key=/tmp/key.sec' -- /nix/store/…-hello
 *
 * The cache signs what it receives when its URI has `secret-key=FILE` (make a key pair with
 * `b3 key generate`). The paths come from your own store, so their signatures are not checked.
 * Prints `{ copied, skipped }`: the store paths pushed, and those the cache already had.
 */
import { Effect } from "effect"
import { Cache, copyPaths, makeProgress, requireWrite, StorePath, StoreRead } from "b3"

export default (args: ReadonlyArray<string>) => Effect.gen(function*() {
  const store = yield* StoreRead
  const cache = yield* Cache
  const target = { read: cache.read, write: yield* requireWrite(cache) }
  const paths = yield* Effect.forEach(args, (arg) => Effect.fromResult(StorePath.parse(arg, store.storeDir)))

  // A progress line on a terminal (nothing when piped or with --quiet).
  const progress = makeProgress("push")
  let total = 0
  let done = 0
  const result = yield* copyPaths(store, target, paths, {
    closure: true,
    checkSigs: false,
    onEvent: (event) => {
      if (event.type === "plan") total = event.total
      if (event.type === "done") progress.update(`${++done}/${total} paths`)
    }
  }).pipe(Effect.ensuring(Effect.sync(progress.done)))

  yield* Effect.log(`pushed ${result.copied.length} path(s) to ${cache.read.uri}, ${result.skipped.length} already there`)
  const print = (p: StorePath.StorePath) => StorePath.print(p, store.storeDir)
  return { copied: result.copied.map(print), skipped: result.skipped.map(print) }
})
