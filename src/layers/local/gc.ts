/**
 * Garbage collection of a local store, by Nix's protocol so that Nix and b3 can share the store:
 * the collector holds `gc.lock` exclusively, serves `gc-socket/socket` for roots other processes
 * add while it runs, and reads the temporary roots of live processes (nix-locks.ts). Roots are also
 * the symlinks under `gcroots/` (followed one level further when they point at a symlink outside
 * the store, like a `result` link) and the paths running processes hold (runtime-roots.ts, from
 * /proc); everything their closure reaches is kept. After deleting, entries of `.links` (Nix's
 * hard-link deduplication, optimise.ts) that no path uses any more are removed.
 *
 * Deciding and deleting happen in one write transaction: no path can become valid (or referenced)
 * in between, and a root that arrives on the socket is handled either before (kept) or after (the
 * path is already invalid, as the client then sees). Dead paths are unregistered referrers first
 * and their contents moved aside, then removed after the commit. Store entries that are not valid
 * and not anyone's temporary root (what a crashed adder left) are removed too; names that are not
 * store paths (Nix's `add-*` directories while it adds, b3's own temporaries) are never touched.
 */
import { Effect, Option, Result, type Scope } from "effect"
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { dirname, join, resolve } from "node:path"
import * as StorePath from "../../core/store-path.ts"
import * as Hash from "../../core/hash.ts"
import type { GcOptions, GcResult, GcRoot } from "../../services/store-maintenance.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import { listenUnix } from "../../io/unix-socket.ts"
import type { StoreDatabase } from "./database.ts"
import { removeTree, rename, trySync } from "./fs-ops.ts"
import type { LocalStoreLayout } from "./layout.ts"
import type { NixLocks } from "./nix-locks.ts"
import { liveTempRoots, tempName, type TempPlace } from "./temp-roots.ts"
import { findRuntimeRoots } from "./runtime-roots.ts"
import { removeUnusedLinks } from "./optimise.ts"

export interface GcContext {
  readonly uri: string
  readonly layout: LocalStoreLayout
  readonly db: StoreDatabase
  readonly locks: NixLocks
  readonly temp: TempPlace
}

/** The store path (logical, full) a file-system path lies in, if any. */
const storePathOf = (layout: LocalStoreLayout, target: string): string | undefined => {
  const prefix = layout.storeDir + "/"
  if (!target.startsWith(prefix)) return undefined
  const name = target.slice(prefix.length).split("/")[0]!
  return name ? prefix + name : undefined
}

/** The permanent roots: store paths the links under `gcroots/` lead to. */
export const findRoots = (layout: LocalStoreLayout): ReadonlyArray<string> =>
  [...new Set(findRootLinks(layout).map((r) => r.target))].sort()

/** The permanent roots with the links that make them roots (for an indirect root, the outer link, e.g. `result`). */
export const findRootLinks = (layout: LocalStoreLayout): ReadonlyArray<GcRoot> => {
  const roots: Array<GcRoot> = []
  const stack = [layout.gcRootsDir]
  while (stack.length > 0) {
    const dir = stack.pop()!
    let names: Array<string>
    try { names = readdirSync(dir) } catch { continue }
    for (const name of names) {
      const path = join(dir, name)
      const st = lstatSync(path)
      if (st.isDirectory()) { stack.push(path); continue }
      if (!st.isSymbolicLink()) continue
      let link = path
      let target = resolve(dirname(path), readlinkSync(path))
      let root = storePathOf(layout, target)
      if (!root) {
        // an indirect root: a link to a link (e.g. a `result` symlink) that points into the store
        try {
          if (lstatSync(target).isSymbolicLink()) {
            link = target
            target = resolve(dirname(target), readlinkSync(target))
            root = storePathOf(layout, target)
          }
        } catch { /* a dangling indirect root keeps nothing */ }
      }
      if (root) roots.push({ link, target: root })
    }
  }
  return roots
}

/** Makes `link` (a symlink outside the store, like `result`) an indirect root, as Nix does: gcroots/auto/<sha1 of link> → link. */
export const addIndirectRoot = (layout: LocalStoreLayout, link: string): void => {
  const auto = join(layout.gcRootsDir, "auto")
  mkdirSync(auto, { recursive: true })
  const name = join(auto, Hash.encode(Hash.hashBytes("sha1", link), "base32"))
  const temp = `${name}.tmp-${process.pid}`
  rmSync(temp, { force: true })
  symlinkSync(link, temp)
  renameSync(temp, name)
}

/** A path asked to be deleted is still reachable from a root. */
export class StillAlive extends Error {
  readonly path: string
  constructor(path: string) {
    super(`cannot delete path '${path}' since it is still alive`)
    this.path = path
  }
}

/**
 * The bytes deleting `path` frees, counted as Nix's deletePath does: a file with more than two
 * links frees nothing, one with two is taken to be shared with `.links` only (freed with it).
 */
const sizeOf = (path: string): number => {
  let total = 0
  const stack = [path]
  while (stack.length > 0) {
    const p = stack.pop()!
    const st = lstatSync(p)
    if (st.isDirectory()) {
      total += st.size
      for (const name of readdirSync(p)) stack.push(join(p, name))
    } else if (st.nlink <= 2) total += st.size
  }
  return total
}

/**
 * The collector's socket (`gc-socket/socket`): each line a store path that a process has just made a
 * temporary root, answered with `1`. Lines are handled between JavaScript turns, so never in the
 * middle of the deciding-and-deleting transaction.
 */
const rootsServer = (layout: LocalStoreLayout, uri: string): Effect.Effect<Set<string>, StoreIoError, Scope.Scope> => {
  const socketPath = join(layout.stateDir, "gc-socket", "socket")
  const hashParts = new Set<string>()
  return Effect.acquireRelease(
    trySync(uri, "listen on the GC socket", () => {
      mkdirSync(dirname(socketPath), { recursive: true })
      rmSync(socketPath, { force: true })
      const server = createServer((connection) => {
        let pending = ""
        connection.setEncoding("utf8")
        connection.on("error", () => connection.destroy())
        connection.on("data", (data: string) => {
          pending += data
          let end: number
          while ((end = pending.indexOf("\n")) >= 0) {
            const path = pending.slice(0, end)
            pending = pending.slice(end + 1)
            const base = path.slice(path.lastIndexOf("/") + 1)
            hashParts.add(base.slice(0, 32))
            connection.write("1")
          }
          if (pending.length > 4096) connection.destroy()
        })
      })
      return server
    }).pipe(Effect.flatMap((server) => Effect.tryPromise({
      // a path too long for a socket (a store deep in temporary directories) is handled by listenUnix
      try: () => listenUnix(server, socketPath).then((cleanup) => ({ server, cleanup })),
      catch: (e) => new StoreIoError({ store: uri, operation: "listen on the GC socket", reason: e instanceof Error ? e.message : String(e) })
    }))),
    ({ server, cleanup }) => Effect.callback<void>((resume) => {
      server.close(() => resume(Effect.void))
      cleanup()
      rmSync(socketPath, { force: true })
    })
  ).pipe(Effect.as(hashParts))
}

export const collectGarbage = (ctx: GcContext, options: GcOptions = {}): Effect.Effect<GcResult, StoreIoError> =>
  Effect.scoped(Effect.gen(function*() {
    const { layout, db } = ctx
    yield* ctx.locks.gcLock
    const socketRoots = yield* rootsServer(layout, ctx.uri)
    const tempRoots = new Set((yield* liveTempRoots(layout, ctx.locks, { skipOwn: options.ownTempRoots === false })).map((p) => p.slice(layout.storeDir.length + 1, layout.storeDir.length + 33)))
    // paths running processes hold (read before deciding: a process that starts using a path later
    // has to get it from somewhere that is a root, or take a temporary root, as with Nix)
    const runtimeRoots = yield* trySync(ctx.uri, "find runtime roots", () => findRuntimeRoots(layout, { censor: true }).map((r) => r.target))
    const trash: Array<string> = []
    const result = yield* trySync(ctx.uri, "collect garbage", () => db.immediate(() => {
      const rooted = (hashPart: string) => tempRoots.has(hashPart) || socketRoots.has(hashPart)
      const roots = [...new Set([...findRoots(layout), ...runtimeRoots, ...(options.extraRoots ?? [])])].sort()
      const valid = new Set(db.allValidPaths())
      const live = new Set<string>()
      const hashPartOf = (path: string) => path.slice(layout.storeDir.length + 1, layout.storeDir.length + 33)
      const frontier = [...roots.filter((r) => valid.has(r)), ...[...valid].filter((p) => rooted(hashPartOf(p)))]
      for (const r of frontier) live.add(r)
      while (frontier.length > 0) {
        const path = frontier.pop()!
        for (const ref of db.referencesOf(path)) if (!live.has(ref)) { live.add(ref); frontier.push(ref) }
      }
      let dead = [...valid].filter((p) => !live.has(p))
      if (options.paths) {
        // only these (with their dead referrers, which cannot outlive them)
        for (const p of options.paths) if (valid.has(p) && live.has(p)) throw new StillAlive(p)
        const wanted = new Set<string>()
        const stack = options.paths.filter((p) => valid.has(p))
        while (stack.length > 0) {
          const p = stack.pop()!
          if (wanted.has(p)) continue
          wanted.add(p)
          for (const r of db.referrersOfPath(p)) if (!wanted.has(r)) stack.push(r)
        }
        dead = dead.filter((p) => wanted.has(p))
      }
      // Unregister referrers before what they refer to (Refs' "on delete restrict").
      const deadSet = new Set(dead)
      const order: Array<string> = []
      const done = new Set<string>()
      const visit = (start: string) => {
        const stack: Array<{ path: string; referrers: ReadonlyArray<string>; next: number }> = []
        const push = (p: string) => { done.add(p); stack.push({ path: p, referrers: db.referrersOfPath(p).filter((r) => deadSet.has(r) && r !== p), next: 0 }) }
        push(start)
        while (stack.length > 0) {
          const top = stack[stack.length - 1]!
          if (top.next < top.referrers.length) {
            const r = top.referrers[top.next++]!
            if (!done.has(r)) push(r)
          } else { stack.pop(); order.push(top.path) }
        }
      }
      for (const p of dead.sort()) if (!done.has(p)) visit(p)
      // Invalid entries nobody is adding: a store path's name (a `<path>.lock` Nix left too, as Nix's
      // collector deletes them), no row, no temporary root (adders take one before they lock or write).
      const present = readdirSync(layout.realStoreDir)
      const invalid = options.paths ? [] : present.filter((name) => {
        if (name.startsWith(".")) return false
        const parsed = StorePath.parseBaseName(name)
        return Result.isSuccess(parsed) && !valid.has(`${layout.storeDir}/${name}`) && !rooted(parsed.success.hashPart)
      }).map((name) => `${layout.storeDir}/${name}`)
      let bytesFreed = 0
      for (const path of [...order, ...invalid]) {
        const physical = join(layout.realStoreDir, path.slice(layout.storeDir.length + 1))
        try { bytesFreed += sizeOf(physical) } catch { /* contents already missing */ }
        if (options.dryRun) continue
        if (valid.has(path)) db.deletePath(path)
        try {
          const aside = tempName(ctx.temp, "gc")
          rename(physical, aside)
          trash.push(aside)
        } catch { /* contents already missing */ }
      }
      return { roots, deleted: [...order, ...invalid], bytesFreed, live: [...live].sort() }
    }))
    for (const path of trash) removeTree(path)
    if (!options.dryRun) yield* trySync(ctx.uri, "remove unused links", () => removeUnusedLinks(layout))
    return result
  }))
