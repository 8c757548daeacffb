/** File-system steps of the local store, each as an effect with a typed error. */
import { Effect } from "effect"
import { constants, existsSync, lstatSync, readdirSync, renameSync, rmSync } from "node:fs"
import { open } from "node:fs/promises"
import { join } from "node:path"
import { StoreIoError } from "../../services/store-errors.ts"
import { makeWritable } from "../../io/canonicalise.ts"

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
 * Trees up to this many entries are flushed entry by entry; larger ones with one syncfs. (Measured
 * here: one fsync of a small file costs ~3.5 ms, concurrent ones share a journal commit; one
 * `sync -f` costs 5–40 ms whatever the number of files, but flushes other writers' data too.)
 */
const perFileSyncLimit = 64

/** The entries of the trees (files and directories; symlinks need no fsync), or undefined past `limit`. */
const smallTreeEntries = (roots: ReadonlyArray<string>, limit: number): Array<string> | undefined => {
  const entries: Array<string> = []
  const pending = [...roots]
  while (pending.length > 0) {
    const path = pending.pop()!
    const st = lstatSync(path)
    if (st.isSymbolicLink()) continue
    entries.push(path)
    if (entries.length > limit) return undefined
    if (st.isDirectory()) for (const name of readdirSync(path)) pending.push(join(path, name))
  }
  return entries
}

/** fsync of one file or directory, on libuv's thread pool. */
const fsyncPath = async (path: string): Promise<void> => {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  try { await handle.sync() } finally { await handle.close() }
}

/**
 * Makes the contents of freshly written trees durable before they are registered: an fsync per
 * file and directory for small trees, one `syncfs` of the file system for large ones. The
 * fsyncs run at once, off this thread (the file system folds them into one journal commit, and
 * other adds go on meanwhile, so the next group commit gathers more).
 */
export const syncTrees = (
  store: string,
  roots: ReadonlyArray<string>,
  fileSystemDir: string,
  syncfs: (dir: string) => Effect.Effect<void, StoreIoError>
): Effect.Effect<void, StoreIoError> =>
  trySync(store, "sync", () => smallTreeEntries(roots, perFileSyncLimit)).pipe(Effect.flatMap((entries) =>
    entries === undefined
      ? syncfs(fileSystemDir)
      : Effect.tryPromise({ try: () => Promise.all(entries.map(fsyncPath)), catch: ioError(store, "sync") }).pipe(Effect.asVoid)))
