/** File-system steps of the local store, each as an effect with a typed error. */
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { existsSync, renameSync, rmSync } from "node:fs"
import { StoreIoError } from "../../services/errors.ts"
import { makeWritable } from "./canonicalise.ts"

export const ioError = (store: string, operation: string) => (cause: unknown) =>
  new StoreIoError({ store, operation, reason: cause instanceof Error ? cause.message : String(cause) })

export const trySync = <A>(store: string, operation: string, f: () => A): Effect.Effect<A, StoreIoError> =>
  Effect.try({ try: f, catch: ioError(store, operation) })

/** Removes a tree even when it is read-only store contents. */
export const removeTree = (path: string): void => {
  if (!existsSync(path)) return
  try { rmSync(path, { recursive: true, force: true }) } catch {
    makeWritable(path)
    rmSync(path, { recursive: true, force: true })
  }
}

export const rename = (from: string, to: string): void => renameSync(from, to)

/**
 * Flushes the file system holding `dir` to disk (syncfs through coreutils' `sync -f`): one call
 * makes every file written before it durable, instead of an fsync per file.
 */
export const syncFileSystem = (store: string, dir: string): Effect.Effect<void, StoreIoError> =>
  Effect.callback<void, StoreIoError>((resume) => {
    execFile("sync", ["-f", dir], (error) => resume(error ? Effect.fail(ioError(store, "sync")(error)) : Effect.void))
  })
