/**
 * A program written against the store services only, so it runs on any store: a local one, a
 * binary cache, or, in its test (examples/memory-store.test.ts), the in-memory store.
 *
 *   b3 run examples/memory-store.ts --store /tmp/r -- alice bob
 *
 * `publishGreetings` adds one text file per name and an index that refers to all of them, and
 * returns the index's closure: the index and every greeting, sorted as `nix path-info -r` sorts.
 */
import { Effect } from "effect"
import { computeClosure, StorePath, StoreRead, StoreWrite } from "b3"

export const publishGreetings = (names: ReadonlyArray<string>) => Effect.gen(function*() {
  const write = yield* StoreWrite
  const read = yield* StoreRead
  const greetings = yield* Effect.forEach(names, (name) => write.addText(`hello-${name}`, `hello, ${name}\n`))
  const index = yield* write.addText(
    "greetings",
    greetings.map((g) => StorePath.print(g.path, read.storeDir)).join("\n") + "\n",
    greetings.map((g) => g.path)
  )
  const closure = yield* computeClosure([index.path])
  return closure.map((path) => StorePath.print(path, read.storeDir))
})

export default (args: ReadonlyArray<string>) => publishGreetings(args.length > 0 ? args : ["world"])
