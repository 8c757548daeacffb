/**
 * The IPFS store's repository directory, besides Helia's own `blocks/` and `datastore/`:
 *
 * - `root`: the CID of the store's current version (its root directory), one line. Every write
 *   publishes a new one by writing a temporary file, syncing it and renaming it over `root`, so
 *   the pointer is always a whole CID whose blocks were all stored before it was published.
 * - `lock`: held (created exclusively, holding the owner's pid) while a writable store is open,
 *   so two processes never publish over each other; a lock whose process is gone is taken over.
 */
import { Effect, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs"
import { join } from "node:path"
import { StoreIoError, processAlive } from "b3/plugin"

const rootFile = (repo: string) => join(repo, "root")

/** The published root CID, or undefined for a repo that has none yet. */
export const readRoot = (uri: string, repo: string): Effect.Effect<string | undefined, StoreIoError> =>
  Effect.try({
    try: () => {
      try { return readFileSync(rootFile(repo), "utf8").trim() || undefined } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
        throw e
      }
    },
    catch: (e) => new StoreIoError({ store: uri, operation: "read the root pointer", reason: String(e) })
  })

/** Publishes `cid` as the repo's root, atomically and durably. */
export const publishRoot = (uri: string, repo: string, cid: string): Effect.Effect<void, StoreIoError> =>
  Effect.try({
    try: () => {
      const tmp = join(repo, `root.${process.pid}.${randomBytes(4).toString("hex")}.tmp`)
      const fd = openSync(tmp, "w")
      try { writeSync(fd, `${cid}\n`); fsyncSync(fd) } finally { closeSync(fd) }
      renameSync(tmp, rootFile(repo))
      const dir = openSync(repo, "r")
      try { fsyncSync(dir) } finally { closeSync(dir) }
    },
    catch: (e) => new StoreIoError({ store: uri, operation: "publish the root pointer", reason: String(e) })
  })


const takeLock = (uri: string, repo: string): Effect.Effect<string, StoreIoError> => Effect.try({
  try: () => {
    mkdirSync(repo, { recursive: true })
    const file = join(repo, "lock")
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(file, "wx")
        try { writeSync(fd, `${process.pid}\n`) } finally { closeSync(fd) }
        return file
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw e
        const owner = Number(readFileSync(file, "utf8").trim())
        if (Number.isInteger(owner) && owner > 0 && processAlive(owner)) throw new Error(`the repo is in use by process ${owner} (${file})`)
        rmSync(file, { force: true }) // its owner is gone
      }
    }
  },
  catch: (e) => new StoreIoError({ store: uri, operation: "lock the IPFS repo", reason: e instanceof Error ? e.message : String(e) })
})

/** Holds the repo's write lock for the lifetime of the scope. */
export const lockRepo = (uri: string, repo: string): Effect.Effect<void, StoreIoError, Scope.Scope> =>
  Effect.asVoid(Effect.acquireRelease(takeLock(uri, repo), (file) => Effect.sync(() => rmSync(file, { force: true }))))
