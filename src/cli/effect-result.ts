/** Lifts the pure core's `Result` values into effects for the CLI handlers. */
import { Effect, Result } from "effect"

export const fromResult = <A, E>(result: Result.Result<A, E>): Effect.Effect<A, E> =>
  Result.isSuccess(result) ? Effect.succeed(result.success) : Effect.fail(result.failure)
