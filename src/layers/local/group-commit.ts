/**
 * Group commit: adders whose contents are ready at about the same time share one flush to disk and
 * one transaction. Each call still returns only once its own entry is durable and registered (or
 * fails with the batch's error).
 *
 * One caller at a time is the committer: it commits everything waiting, then whatever was queued
 * meanwhile, until nothing is left; the others only wait for their entry's batch. (Callers that
 * took turns on a lock instead formed a convoy: each one, its own entry long committed, still
 * waited for the lock and then committed the one entry queued since, so batches shrank to one.)
 */
import { Deferred, Effect } from "effect"

export const makeGroupCommit = <T, E>(commitAll: (entries: ReadonlyArray<T>) => Effect.Effect<void, E>) => {
  const waiting: Array<{ readonly entry: T; readonly done: Deferred.Deferred<void, E> }> = []
  let committing = false
  /** Commits batch after batch while entries are waiting; run by the one committer. */
  const commitWaiting: Effect.Effect<void> = Effect.suspend(() => {
    if (waiting.length === 0) {
      committing = false
      return Effect.void
    }
    const batch = waiting.splice(0)
    return Effect.exit(commitAll(batch.map((w) => w.entry))).pipe(
      Effect.flatMap((exit) => Effect.forEach(batch, (w) => Deferred.done(w.done, exit), { discard: true })),
      Effect.andThen(commitWaiting))
  })
  // Uninterruptible: once queued, an entry's temporary tree must stay until its batch is through.
  // `onQueued` runs once the entry is queued: whatever is queued after it is committed in the same batch or a later one.
  return (entry: T, onQueued: Effect.Effect<void> = Effect.void): Effect.Effect<void, E> => Effect.uninterruptible(Effect.suspend(() => {
    const done = Deferred.makeUnsafe<void, E>()
    waiting.push({ entry, done })
    return onQueued.pipe(
      Effect.andThen(Effect.suspend(() => {
        if (committing) return Effect.void
        committing = true
        return commitWaiting
      })),
      Effect.andThen(Deferred.await(done)))
  }))
}
