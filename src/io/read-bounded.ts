/**
 * Reading a small input file whole (a `.drv`, a narinfo, a key, the config), with a size bound so
 * that `/dev/zero`, a FIFO that never ends or a mistaken multi-GiB file gives an error instead of
 * filling memory. Reads at most `limit + 1` bytes, whatever the file claims to be.
 */
import { Effect, Schema } from "effect"
import { open } from "node:fs/promises"
import { FileNotFound, fsError, type NarIoError } from "../nar/fs/errors.ts"

/** The file is larger than what this input may be. */
export class FileTooLarge extends Schema.TaggedError<FileTooLarge>()("FileTooLarge", {
  path: Schema.String,
  what: Schema.String,
  limit: Schema.Number
}) {
  override get message() { return `'${this.path}' is too large for ${this.what} (more than ${formatLimit(this.limit)})` }
}

const formatLimit = (bytes: number) => bytes % (1 << 20) === 0 ? `${bytes / (1 << 20)} MiB` : `${bytes} bytes`

/** Narinfos, keys, config files: 16 MiB. */
export const maxSmallFileBytes = 16 << 20

export const readBounded = (path: string, limit: number, what: string): Effect.Effect<Uint8Array, FileTooLarge | FileNotFound | NarIoError> =>
  Effect.tryPromise({
    try: async () => {
      const handle = await open(path, "r")
      try {
        const chunks: Array<Uint8Array> = []
        let total = 0
        for (;;) {
          const want = Math.min(1 << 20, limit + 1 - total)
          const buffer = new Uint8Array(want)
          const { bytesRead } = await handle.read(buffer, 0, want, null)
          if (bytesRead === 0) break
          chunks.push(bytesRead === want ? buffer : buffer.subarray(0, bytesRead))
          total += bytesRead
          if (total > limit) return undefined
        }
        return Buffer.concat(chunks, total) as Uint8Array
      } finally {
        await handle.close()
      }
    },
    catch: (e) => (e as NodeJS.ErrnoException).code === "ENOENT" ? new FileNotFound({ path }) : fsError(e, "read", path)
  }).pipe(Effect.flatMap((bytes) => bytes === undefined ? Effect.fail(new FileTooLarge({ path, what, limit })) : Effect.succeed(bytes)))

/** `readBounded` for text files (UTF-8). */
export const readBoundedString = (path: string, limit: number, what: string) =>
  Effect.map(readBounded(path, limit, what), (bytes) => new TextDecoder().decode(bytes))
