/**
 * Build logs where Nix keeps them: `<logDir>/drvs/<first two characters of the drv base name>/<the
 * rest>`, written as the build runs (uncompressed; Nix's own `.bz2` logs are read as well).
 */
import { closeSync, existsSync, mkdirSync, openSync, writeSync } from "node:fs"
import { dirname, join } from "node:path"
import { Effect, Stream, type Scope } from "effect"
import { decompress } from "../io/compression.ts"
import { readFileStream } from "../io/file-stream.ts"

/** The log file of a derivation (without the `.bz2` Nix may add). */
export const logPath = (logDir: string, drvPath: string): string => {
  const base = drvPath.slice(drvPath.lastIndexOf("/") + 1)
  return join(logDir, "drvs", base.slice(0, 2), base.slice(2))
}

export interface BuildLogWriter {
  readonly write: (chunk: Uint8Array) => void
}

/** Opens (truncating) the log of a build for the scope; a log that cannot be written is skipped, not fatal. */
export const openBuildLog = (logDir: string, drvPath: string): Effect.Effect<BuildLogWriter, never, Scope.Scope> =>
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

const fileStream = (path: string): Stream.Stream<Uint8Array, Error> =>
  readFileStream(path, (e) => (e instanceof Error ? e : new Error(String(e))))

/** The log of a derivation as a stream, or undefined when there is none. */
export const readBuildLog = (logDir: string, drvPath: string): Stream.Stream<Uint8Array, Error> | undefined => {
  const path = logPath(logDir, drvPath)
  if (existsSync(path)) return fileStream(path)
  if (existsSync(`${path}.bz2`)) {
    return Stream.mapError(decompress(fileStream(`${path}.bz2`), "bzip2"), (e) => (e instanceof Error ? e : new Error(String(e))))
  }
  return undefined
}
