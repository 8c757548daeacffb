/** A file's bytes as an Effect stream, read in 1 MiB chunks; `onError` turns a read failure into the caller's typed error. */
import * as NodeStream from "@effect/platform-node/NodeStream"
import type { Stream } from "effect"
import { createReadStream } from "node:fs"

export const readFileStream = <E>(path: string, onError: (error: unknown) => E): Stream.Stream<Uint8Array, E> =>
  NodeStream.fromReadable({ evaluate: () => createReadStream(path, { highWaterMark: 1 << 20 }), onError })
