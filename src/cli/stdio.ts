/** Streaming bytes to stdout and from stdin with back-pressure (a 1 GiB NAR never sits in memory). */
import { Effect, Stream } from "effect"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { StoreIoError } from "../services/store-errors.ts"

export const writeStdout = <E, R>(stream: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, E, R> =>
  Stream.runForEach(stream, (chunk) => Effect.callback<void>((resume) => {
    if (process.stdout.write(chunk)) resume(Effect.void)
    else process.stdout.once("drain", () => resume(Effect.void))
  }))

export const readStdin: Stream.Stream<Uint8Array, StoreIoError> = NodeStream.fromReadable({
  evaluate: () => process.stdin,
  onError: (e) => new StoreIoError({ store: "stdin", operation: "read", reason: e instanceof Error ? e.message : String(e) })
})
