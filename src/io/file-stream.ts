/**
 * A file's bytes as an Effect stream; `onError` turns a read failure into the caller's typed error.
 * A small file (most NARs of a binary cache are a few hundred bytes) is one synchronous read into a
 * buffer of its size: no stream machinery, no thread hop. A larger one is read in 1 MiB chunks on
 * the thread pool.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Effect, Stream } from "effect"
import { closeSync, createReadStream, fstatSync, openSync, readSync } from "node:fs"

const chunk = 1 << 20
/** Files up to this size are read at once. */
const smallMax = 64 * 1024

/** The whole file when it is small; undefined when it is bigger (then it is streamed). */
const readIfSmall = (path: string): Uint8Array | undefined => {
  const fd = openSync(path, "r")
  try {
    const size = fstatSync(fd).size
    if (size > smallMax) return undefined
    const bytes = Buffer.allocUnsafe(size + 1) // one more byte: a file that grew meanwhile is streamed instead
    let n = 0
    for (let r; n < bytes.length && (r = readSync(fd, bytes, n, bytes.length - n, n)) > 0;) n += r
    return n > size ? undefined : bytes.subarray(0, n)
  } finally {
    closeSync(fd)
  }
}

export const readFileStream = <E>(path: string, onError: (error: unknown) => E): Stream.Stream<Uint8Array, E> =>
  Stream.unwrap(Effect.try({ try: () => readIfSmall(path), catch: onError }).pipe(Effect.map((small) =>
    small === undefined
      ? NodeStream.fromReadable({ evaluate: () => createReadStream(path, { highWaterMark: chunk }), onError })
      : small.length === 0 ? Stream.empty : Stream.succeed(small))))
