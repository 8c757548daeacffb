/**
 * Testing a store program without a disk: provide `MemoryStore.layer()` instead of a real store.
 * Run with the rest of the tests (test/examples.test.ts imports this file), or alone:
 *
 *   npx vitest run test/examples.test.ts
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { MemoryStore, StorePath, StoreRead } from "b3"
import { publishGreetings } from "./memory-store.ts"

describe("examples/memory-store.ts on the in-memory store", () => {
  it.effect("publishes a greeting per name and an index that refers to them", () => Effect.gen(function*() {
    const closure = yield* publishGreetings(["alice", "bob"])
    assert.strictEqual(closure.length, 3)
    assert.deepStrictEqual(closure.map((p) => p.replace(/^\/nix\/store\/[0-9a-z]{32}-/, "")).sort(), ["greetings", "hello-alice", "hello-bob"])

    // Everything it returns is valid in the store it ran on, and the index refers to both greetings.
    const read = yield* StoreRead
    const index = closure.find((p) => p.endsWith("-greetings"))!
    const info = yield* read.queryPathInfo(yield* Effect.fromResult(StorePath.parse(index, read.storeDir)))
    assert.deepStrictEqual(info.references.map((r) => StorePath.print(r, read.storeDir)).sort(), closure.filter((p) => p !== index).sort())
  }).pipe(Effect.provide(MemoryStore.layer())))

  it.effect("gives the same paths on every store: text paths depend only on their contents", () => Effect.gen(function*() {
    const first = yield* publishGreetings(["carol"]).pipe(Effect.provide(MemoryStore.layer()))
    const second = yield* publishGreetings(["carol"]).pipe(Effect.provide(MemoryStore.layer()))
    assert.deepStrictEqual(first, second)
  }))
})
