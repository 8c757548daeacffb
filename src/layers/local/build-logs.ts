/**
 * Build logs where Nix keeps them: `<logDir>/drvs/<first two characters of the drv base name>/<the
 * rest>`, written as the build runs (uncompressed; Nix's own `.bz2` logs are read as well).
 */
import { closeSync, existsSync, mkdirSync, openSync, writeSync } from "node:fs"
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

/** Opens (truncating) the log of a build for the scope; a log that cannot be written is skipped, not fatal. */
export const openBuildLog = (logDir: string, drvPath: string): Effect.Effect<BuildLogSink, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      try {
        const path = logPath(logDir, drvPath)
        mkdirSync(dirname(path), { recursive: true })
        return openSync(path, "w", 0o644)
      } catch {
        return undefined
      }
    }),
    (fd) => Effect.sync(() => { if (fd !== undefined) closeSync(fd) })
  ).pipe(Effect.map((fd) => ({
    write: (chunk: Uint8Array) => {
      if (fd === undefined) return
      let offset = 0
      while (offset < chunk.length) offset += writeSync(fd, chunk, offset)
    }
  })))

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
