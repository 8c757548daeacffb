/**
 * One-pass digests of NAR byte streams: hash and size computed while the bytes flow past, with no
 * second read. `tapHash` passes the stream through and hands the digest to a callback at the end,
 * before the stream completes, so a mismatch can still fail the consumer (e.g. abort a restore).
 */
import { Effect, Sink, Stream } from "effect"
import { dual } from "effect/Function"
import * as Hash from "../core/hash.ts"

export interface NarDigest {
  readonly hash: Hash.Hash
  readonly size: number
}

/** A sink that hashes and counts the bytes it is fed. */
export const narHashSink = (algorithm: Hash.HashAlgorithm = "sha256"): Sink.Sink<NarDigest, Uint8Array> =>
  Sink.reduceArray(
    () => ({ hasher: Hash.hasher(algorithm), size: 0 }),
    (state, chunks: ReadonlyArray<Uint8Array>) => {
      for (const chunk of chunks) {
        state.hasher.update(chunk)
        state.size += chunk.length
      }
      return state
    }
  ).pipe(Sink.map((state) => ({ hash: state.hasher.digest(), size: state.size })))

/** Hash and size of a whole byte stream (a NAR, or anything else). */
export const narHashAndSize = <E, R>(
  stream: Stream.Stream<Uint8Array, E, R>,
  algorithm: Hash.HashAlgorithm = "sha256"
): Effect.Effect<NarDigest, E, R> => Stream.run(stream, narHashSink(algorithm))

/**
 * Passes the stream through unchanged, hashing it on the way; when it ends, runs `onDigest` with the
 * hash and size before completing (a failure of `onDigest` fails the stream).
 */
export const tapHash: {
  <E2, R2>(algorithm: Hash.HashAlgorithm, onDigest: (digest: NarDigest) => Effect.Effect<unknown, E2, R2>): <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Uint8Array, E | E2, R | R2>
  <E, R, E2, R2>(self: Stream.Stream<Uint8Array, E, R>, algorithm: Hash.HashAlgorithm, onDigest: (digest: NarDigest) => Effect.Effect<unknown, E2, R2>): Stream.Stream<Uint8Array, E | E2, R | R2>
} = dual(3, <E, R, E2, R2>(
  self: Stream.Stream<Uint8Array, E, R>,
  algorithm: Hash.HashAlgorithm,
  onDigest: (digest: NarDigest) => Effect.Effect<unknown, E2, R2>
): Stream.Stream<Uint8Array, E | E2, R | R2> =>
  Stream.suspend(() => {
    const hasher = Hash.hasher(algorithm)
    let size = 0
    return self.pipe(
      Stream.mapArray((chunks) => {
        for (const chunk of chunks) {
          hasher.update(chunk)
          size += chunk.length
        }
        return chunks
      }),
      Stream.concat(Stream.fromEffectDrain(Effect.suspend(() => onDigest({ hash: hasher.digest(), size }))))
    )
  }))
