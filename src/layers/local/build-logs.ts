/**
 * Build logs where Nix keeps them: `<logDir>/drvs/<first two characters of the drv base name>/<the
 * rest>`, written as the build runs (uncompressed; Nix's own `.bz2` logs are read as well).
 */
import { existsSync, writeSync } from "node:fs"
import { mkdir, open, type FileHandle } from "node:fs/promises"
import { dirname, join } from "node:path"
import { Effect, Option, Stream, type Scope } from "effect"
import type { BuildLogSink } from "../../services/build-host.ts"
import type { BuildLogsApi } from "../../services/build-logs.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import { decompress } from "../../io/compression.ts"
import { readFileStream } from "../../io/file-stream.ts"

/** The log file of a derivation (without the `.bz2` Nix may add). */
export const logPath = (logDir: string, drvPath: string): string => {
  const base = drvPath.slice(drvPath.lastIndexOf("/") + 1)
  return join(logDir, "drvs", base.slice(0, 2), base.slice(2))
}

/**
 * Opens (truncating) the log of a build for the scope; a log that cannot be written is skipped, not
 * fatal. It is opened on libuv's threads (creating a file costs a journal update, a millisecond or
 * more on a busy disk, which the build's start need not wait for); what the build writes before
 * then is kept and written first. The scope's end waits for it and closes the file.
 */
export const openBuildLog = (logDir: string, drvPath: string): Effect.Effect<BuildLogSink, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const log: { file: FileHandle | undefined; pending: Array<Uint8Array> | undefined } = { file: undefined, pending: [] }
      const path = logPath(logDir, drvPath)
      const opened = mkdir(dirname(path), { recursive: true }).then(() => open(path, "w", 0o644)).then(
        (file) => {
          log.file = file
          try {
            for (const chunk of log.pending ?? []) writeAll(file.fd, chunk)
          } catch { /* as a failed write later: the log is incomplete, the build goes on */ }
          log.pending = undefined
        },
        () => { log.pending = undefined })
      return { log, opened }
    }),
    ({ log, opened }) => Effect.promise(() => opened.then(() => log.file?.close()).catch(() => {}))
  ).pipe(Effect.map(({ log }) => ({
    write: (chunk: Uint8Array) => {
      if (log.file !== undefined) writeAll(log.file.fd, chunk)
      else log.pending?.push(chunk)
    }
  })))

const writeAll = (fd: number, chunk: Uint8Array) => {
  let offset = 0
  while (offset < chunk.length) offset += writeSync(fd, chunk, offset)
}

const fileStream = (uri: string, path: string): Stream.Stream<Uint8Array, StoreIoError> =>
  readFileStream(path, (e) => new StoreIoError({ store: uri, operation: `read build log ${path}`, reason: e instanceof Error ? e.message : String(e) }))

/** The logs in `logDir` (`BuildLogs`): a derivation's log as a stream, or none. */
export const buildLogs = (uri: string, logDir: string): BuildLogsApi => ({
  readLog: (drvPath) => Effect.sync(() => {
    const path = logPath(logDir, drvPath)
    if (existsSync(path)) return Option.some(fileStream(uri, path))
    if (existsSync(`${path}.bz2`)) {
      return Option.some(Stream.mapError(decompress(fileStream(uri, `${path}.bz2`), "bzip2"),
        (e) => e instanceof StoreIoError ? e : new StoreIoError({ store: uri, operation: "decompress build log", reason: e.message })))
    }
    return Option.none()
  })
})
