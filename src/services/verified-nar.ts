/**
 * Checks a NAR while it streams into a store: its structure (through the validating decoder),
 * its sha256 and its size. The checks finish with the stream: a consumer that commits only after
 * the stream has completed never commits a bad path.
 */
import { Effect, Stream } from "effect"
import * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import { NarDecoder } from "../nar/decode.ts"
import type { BadNar } from "../nar/errors.ts"
import type { NarEvent } from "../nar/events.ts"
import { HashMismatch } from "./store-errors.ts"
import type { PathInfo } from "./path-info.ts"
import type { StoreError } from "./store-errors.ts"

export const verifiedNar = <E, R>(
  info: PathInfo,
  storeDir: string,
  nar: Stream.Stream<Uint8Array, E, R>,
  /** Sees every decoded event (e.g. to build a listing on the way). */
  onEvent?: (event: NarEvent) => void
): Stream.Stream<Uint8Array, E | StoreError, R> => {
  const path = StorePath.print(info.path, storeDir)
  return Stream.suspend(() => {
    const hasher = Hash.hasher(info.narHash.algorithm)
    const decoder = new NarDecoder()
    const events: Array<NarEvent> = [] // events are dropped once `onEvent` has seen them
    let size = 0
    const checked = Stream.mapEffect(nar, (chunk): Effect.Effect<Uint8Array, HashMismatch | BadNar> => {
      size += chunk.length
      if (size > info.narSize) {
        return Effect.fail(new HashMismatch({ path, what: "NAR size", expected: String(info.narSize), actual: `more than ${info.narSize}` }))
      }
      hasher.update(chunk)
      const error = decoder.push(chunk, events)
      if (onEvent) for (const event of events) onEvent(event)
      events.length = 0
      return error ? Effect.fail(error) : Effect.succeed(chunk)
    })
    const finish = Effect.gen(function*() {
      const error = decoder.end()
      if (error) return yield* error
      if (size !== info.narSize) {
        return yield* new HashMismatch({ path, what: "NAR size", expected: String(info.narSize), actual: String(size) })
      }
      const actual = hasher.digest()
      if (!Hash.equals(actual, info.narHash)) {
        return yield* new HashMismatch({ path, what: "NAR hash", expected: Hash.print(info.narHash, "base32"), actual: Hash.print(actual, "base32") })
      }
    })
    return Stream.concat(checked, Stream.fromEffect(finish).pipe(Stream.drain))
  })
}
