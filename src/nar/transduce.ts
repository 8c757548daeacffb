/**
 * Runs a pure incremental state machine over a stream: `push` turns each input element into zero or
 * more outputs (appended to `out`) or an error; `end` flushes when the input is over. The machine is
 * made fresh for each run of the stream.
 */
import { Array as Arr, Cause, Effect, Pull, Stream } from "effect"

export interface Transducer<A, B, E> {
  readonly push: (input: A, out: Array<B>) => E | undefined
  readonly end: (out: Array<B>) => E | undefined
}

export const transduce = <A, B, E, R, E2>(
  self: Stream.Stream<A, E, R>,
  make: () => Transducer<A, B, E2>
): Stream.Stream<B, E | E2, R> =>
  Stream.transformPull(self, (pull) => Effect.sync(() => {
    const machine = make()
    let ended = false
    const emit = (out: Array<B>) => Effect.succeed(out as unknown as Arr.NonEmptyReadonlyArray<B>)
    const next: Effect.Effect<Arr.NonEmptyReadonlyArray<B>, E | E2 | Cause.Done> = Effect.flatMap(pull, (inputs) => {
      const out: Array<B> = []
      for (const input of inputs) {
        const error = machine.push(input, out)
        if (error !== undefined) return Effect.fail(error)
      }
      return out.length > 0 ? emit(out) : next
    })
    const finish = Effect.suspend((): Effect.Effect<Arr.NonEmptyReadonlyArray<B>, E2 | Cause.Done> => {
      ended = true
      const out: Array<B> = []
      const error = machine.end(out)
      if (error !== undefined) return Effect.fail(error)
      return out.length > 0 ? emit(out) : Cause.done()
    })
    return Effect.suspend(() => ended ? Cause.done() : Pull.catchDone(next, () => finish))
  }))
