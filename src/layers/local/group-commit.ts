/**
 * Group commit: adders whose contents are ready at about the same time share one flush to disk and
 * one transaction. Each call still returns only once its own entry is durable and registered (or
 * fails with the batch's error); whoever takes the lock commits everything waiting at that moment.
 */
import { Deferred, Effect, Semaphore } from "effect"
import type { StoreError } from "../../services/store-errors.ts"

export const makeGroupCommit = <T>(commitAll: (entries: ReadonlyArray<T>) => Effect.Effect<void, StoreError>) => {
  const waiting: Array<{ readonly entry: T; readonly done: Deferred.Deferred<void, StoreError> }> = []
  const lock = Semaphore.makeUnsafe(1)
  const commitWaiting = Effect.suspend(() => {
    if (waiting.length === 0) return Effect.void // an earlier holder committed ours
    const batch = waiting.splice(0)
    return Effect.flatMap(Effect.exit(commitAll(batch.map((w) => w.entry))), (exit) =>
      Effect.forEach(batch, (w) => Deferred.done(w.done, exit), { discard: true }))
  })
  // Uninterruptible: once queued, an entry's temporary tree must stay until its batch is through.
  // `onQueued` runs once the entry is queued: whatever is queued after it is committed in the same batch or a later one.
  return (entry: T, onQueued: Effect.Effect<void> = Effect.void): Effect.Effect<void, StoreError> => Effect.uninterruptible(Effect.suspend(() => {
    const done = Deferred.makeUnsafe<void, StoreError>()
    waiting.push({ entry, done })
    return onQueued.pipe(Effect.andThen(lock.withPermits(1)(commitWaiting)), Effect.andThen(Deferred.await(done)))
  }))
}
