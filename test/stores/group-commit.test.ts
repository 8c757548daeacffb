import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeGroupCommit } from "../../src/layers/local/group-commit.ts"
import { StoreIoError } from "../../src/services/store-errors.ts"

describe("group commit", () => {
  it.effect("adders that keep coming while batches commit share batches (no convoy of one-entry batches)", () => Effect.gen(function*() {
    const batches: Array<ReadonlyArray<number>> = []
    // each commit takes a turn of the event loop, as a flush on the thread pool does
    const commit = makeGroupCommit<number, never>((entries) => Effect.andThen(Effect.promise(() => new Promise((r) => setImmediate(r))), Effect.sync(() => { batches.push(entries) })))
    // 200 adders, 16 at a time: each one that finishes lets the next one in, as addMultiple does
    yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => Effect.andThen(Effect.yieldNow, commit(i)), { concurrency: 16, discard: true })
    expect(batches.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i))
    // every entry was in exactly one batch, and batches were many entries each
    expect(batches.length).toBeLessThan(200 / 4)
  }))

  it.effect("a failed batch fails each of its adders, and later batches still commit", () => Effect.gen(function*() {
    const committed: Array<number> = []
    const commit = makeGroupCommit<number, StoreIoError>((entries) => entries.includes(3)
      ? Effect.fail(new StoreIoError({ store: "test", operation: "commit", reason: "no" }))
      : Effect.sync(() => { committed.push(...entries) }))
    const failed = yield* Effect.flip(commit(3))
    expect(failed).toBeInstanceOf(StoreIoError)
    yield* Effect.forEach([4, 5, 6], (i) => commit(i), { concurrency: 3, discard: true })
    expect(committed.sort()).toEqual([4, 5, 6])
  }))
})
