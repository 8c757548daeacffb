/**
 * The host directories of a build, removed when the scope closes: a directory of its own
 * (`b3-build-<pid>-…`, reclaimable after a SIGKILL) with the work directory (chroot tree, mount
 * points, helper files), and the build directory `nix-build-<name>.drv-<n>` in the temp dir, as Nix
 * names it, which the builder sees as /build. Inside a `backgroundRemovals` scope (the sandbox
 * layer's) they are removed in the background once the build is over.
 */
import { accessSync, chmodSync, chownSync, constants, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import { Effect } from "effect"
import type { Scope } from "effect"
import { SandboxSetupFailed } from "./errors.ts"
import { processAlive } from "../../io/process-alive.ts"
import { createSkeleton, type SkeletonEntry } from "./chroot.ts"

/** Paths under which something is mounted, seen from this process. */
const mountPointsUnder = (dir: string): Array<string> => {
  try {
    return readFileSync("/proc/self/mountinfo", "utf8").split("\n")
      .map((line) => line.split(" ")[4] ?? "")
      .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(dir + "/"))
  } catch {
    return []
  }
}

/** Makes every directory under `root` writable and enterable, so that it can be removed. */
const makeRemovable = (root: string) => {
  const pending = [root]
  while (pending.length > 0) {
    const path = pending.pop()!
    try {
      if (!lstatSync(path).isDirectory()) continue
      chmodSync(path, 0o700)
      for (const name of readdirSync(path)) pending.push(join(path, name))
    } catch {
      // vanished, or not ours to change: rmSync reports what really matters
    }
  }
}

/**
 * Removes a directory tree — unless something is mounted inside it (then removing could reach
 * into the mounted file system; the mounts of a build live in its own namespace, so this is only
 * a guard).
 */
export const removeTree = (dir: string): Effect.Effect<void> =>
  Effect.sync(() => {
    if (mountPointsUnder(dir).length > 0) return
    makeRemovable(dir)
    rmSync(dir, { recursive: true, force: true })
  }).pipe(Effect.ignore)

/**
 * Removes a directory tree like removeTree, on libuv's threads: removing even a small tree costs
 * 10–40 ms on a busy disk, which a build should not wait for.
 */
const removeTreeAsync = async (dir: string): Promise<void> => {
  try {
    const mounts = await readFile("/proc/self/mountinfo", "utf8").catch(() => "")
    if (mounts.split("\n").some((line) => { const m = line.split(" ")[4] ?? ""; return m === dir || m.startsWith(dir + "/") })) return
    // As root (sandboxed builds run as root) modes do not stop the removal: the tree is walked to
    // make it removable only when a first attempt fails.
    try {
      await rm(dir, { recursive: true, force: true })
    } catch {
      makeRemovable(dir)
      await rm(dir, { recursive: true, force: true })
    }
  } catch {
    // as removeTree: a tree that cannot be removed is left for reclaimBuildDirectories
  }
}

/** Removals under way in the background, and how many scopes wait for them (see `backgroundRemovals`). */
const pendingRemovals = new Set<Promise<void>>()
let backgroundScopes = 0

/**
 * For the life of the scope, finished builds' directories are removed in the background, while the
 * next build runs; the scope's end waits for every removal. (Outside such a scope they are removed
 * before a build's scope ends.) The sandbox layer opens one for all its builds.
 */
export const backgroundRemovals: Effect.Effect<void, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => { backgroundScopes++ }),
  () => Effect.promise(async () => {
    while (pendingRemovals.size > 0) await Promise.all(pendingRemovals)
    backgroundScopes--
  })
)

/** Removes `dir` now, or in the background inside a `backgroundRemovals` scope. */
const removeLater = (dir: string): Effect.Effect<void> => Effect.suspend(() => {
  if (backgroundScopes === 0) return removeTree(dir)
  const removal: Promise<void> = removeTreeAsync(dir).finally(() => { pendingRemovals.delete(removal) })
  pendingRemovals.add(removal)
  return Effect.void
})

/** The prefix of each build's own directory in the temp dir: `b3-build-<pid>-<random>`. */
const buildPrefix = "b3-build-"


/** The file in a build's own directory that names its build directory (which lives beside it, as Nix names it). */
const buildDirMarker = "build-dir"

/**
 * Removes the directories of builds whose b3 process is gone (killed before it could clean up):
 * only `b3-build-<pid>-…` directories whose pid no process has (in the temp dir and the scratch
 * root), the build directory each one's marker names, and such a process's chroot pool
 * (`b3-chroots-<pid>-…`). Their mounts lived in namespaces that died with them, so nothing is mounted there
 * any more (removeTree checks).
 */
export const reclaimBuildDirectories: Effect.Effect<void> = Effect.gen(function*() {
  let names: Array<string> = []
  if (scratchRoot() !== tmpdir()) {
    try { names = readdirSync(scratchRoot()) } catch { /* nothing to reclaim there */ }
    for (const name of names) if (ownerGone(name, buildPrefix)) yield* removeTree(join(scratchRoot(), name))
  }
  try { names = readdirSync(tmpdir()) } catch { return }
  for (const name of names) if (ownerGone(name, chrootsPrefix)) yield* removeTree(join(tmpdir(), name))
  for (const name of names) {
    if (!ownerGone(name, buildPrefix)) continue
    const parent = join(tmpdir(), name)
    let buildDir: string | undefined
    try { buildDir = readFileSync(join(parent, buildDirMarker), "utf8") } catch { /* killed before it made one */ }
    if (buildDir !== undefined && buildDir.startsWith(join(tmpdir(), "nix-build-"))) yield* removeTree(buildDir)
    yield* removeTree(parent)
  }
})

/** Whether `name` is `<prefix><pid>-…` of a process other than this one that is gone. */
const ownerGone = (name: string, prefix: string): boolean => {
  if (!name.startsWith(prefix)) return false
  const pid = Number(name.slice(prefix.length).split("-")[0])
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid)
}

/**
 * A build's own directory in the temp dir, named after this process so that a later b3 can reclaim
 * it if this one is killed: it holds the work directory and names the build directory. Removed when
 * the scope closes.
 */
export const buildParent = (drvName: string): Effect.Effect<string, SandboxSetupFailed, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const dir = mkdtempSync(join(tmpdir(), `${buildPrefix}${process.pid}-`))
        chmodSync(dir, 0o755)
        return dir
      },
      catch: setupError(drvName, "creating the build's directory")
    }),
    removeLater
  )

/**
 * Where the sandbox's helper files go (the root stage, the exec helper, the seccomp filter, bwrap's
 * options, the store's mount point): /dev/shm when it is a writable tmpfs that allows executing,
 * else the temp dir. Each build makes and removes them: on a disk file system every file costs a
 * journal update (0.3–2 ms on a busy ext4), on a tmpfs a few microseconds. Nothing there is
 * visible to the builder. Decided once per process.
 */
let scratchRootCache: string | undefined
export const scratchRoot = (): string => {
  if (scratchRootCache !== undefined) return scratchRootCache
  let root = tmpdir()
  try {
    const shm = "/dev/shm"
    // the last mount on it is the one seen: "<id> <parent> <dev> <root> <mount point> <options> … - <type> …"
    const line = readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.split(" ")[4] === shm).at(-1)
    const fields = line?.split(" ") ?? []
    const type = line?.split(" - ")[1]?.split(" ")[0]
    if (type === "tmpfs" && !(fields[5] ?? "").split(",").includes("noexec") && lstatSync(shm).isDirectory()) {
      accessSync(shm, constants.W_OK | constants.X_OK)
      root = shm
    }
  } catch { /* the temp dir, then */ }
  return (scratchRootCache = root)
}

/**
 * The root-owned 0755 scratch directory of a sandboxed build (helper files, the store's mount
 * point): on scratchRoot, named like the build's own directory so that a later b3 reclaims it too
 * if this one is killed; removed when the scope closes.
 */
export const scratchDirectory = (parent: string, drvName: string): Effect.Effect<string, SandboxSetupFailed, Scope.Scope> => {
  const root = scratchRoot()
  if (root === tmpdir()) return workDirectory(parent, drvName)
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        const dir = join(root, basename(parent))
        mkdirSync(dir, { mode: 0o755 })
        chmodSync(dir, 0o755)
        return dir
      },
      catch: setupError(drvName, "creating the work directory")
    }),
    removeLater
  )
}

/** The root-owned 0755 work directory (chroot tree, mount points, helper files) in the build's directory. */
export const workDirectory = (parent: string, drvName: string): Effect.Effect<string, SandboxSetupFailed> =>
  Effect.try({
    try: () => {
      const dir = join(parent, "work")
      mkdirSync(dir, { mode: 0o755 })
      chmodSync(dir, 0o755)
      return dir
    },
    catch: setupError(drvName, "creating the work directory")
  })

const setupError = (drvName: string, what: string) => (e: unknown) =>
  new SandboxSetupFailed({ drvName, reason: `${what}: ${e instanceof Error ? e.message : String(e)}`, logTail: "" })

/**
 * Nix's build directory name: <temp dir>/nix-build-<name>.drv-<n>, the first n that is free
 * (mkdir decides, so concurrent builds of equally named derivations get different n). The path is
 * visible to builders (Nix 2.8 puts it in NIX_ATTRS_*_FILE), so it must be Nix's.
 */
const createBuildDir = (drvName: string): string => {
  for (let n = 0; n < 100000; n++) {
    const dir = join(tmpdir(), `nix-build-${drvName}.drv-${n}`)
    try {
      mkdirSync(dir)
      return dir
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    }
  }
  throw new Error(`no free name nix-build-${drvName}.drv-<n> in ${tmpdir()}`)
}

/**
 * The build directory (mode 0700, owned by the build user), named in the build's own directory so
 * that it is reclaimed with it; removed when the scope closes.
 */
export const buildDirectory = (parent: string, drvName: string, uid: number, gid: number): Effect.Effect<string, SandboxSetupFailed, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const dir = createBuildDir(drvName)
        writeFileSync(join(parent, buildDirMarker), dir)
        chmodSync(dir, 0o700)
        chownSync(dir, uid, gid)
        return dir
      },
      catch: setupError(drvName, "creating the build directory")
    }),
    (dir) => Effect.suspend(() => {
      // Its name is freed at once (the next build of an equally named derivation gets the same
      // name, as with Nix): moved into the build's own directory, removed with it.
      if (backgroundScopes > 0 && mountPointsUnder(dir).length === 0) {
        try {
          renameSync(dir, join(parent, "build"))
          return Effect.void
        } catch { /* removed here instead */ }
      }
      return removeTree(dir)
    })
  )

/**
 * Chroot trees and chroot store directories that finished builds left, for the next builds to
 * reuse in place (see `chrootTree`, `chrootStore`), for the life of the scope; its end removes
 * them. The sandbox layer opens one for all its builds.
 */
interface ChrootPool {
  /** `b3-chroots-<pid>-…` in the temp dir (reclaimed like a build's directory), made on first use. */
  dir: string | undefined
  /** Trees not in use, by key. */
  readonly free: Map<string, Array<string>>
  /** Store directories not in use (by build group), with the entries each holds (name → signature). */
  readonly stores: Map<number, Array<{ readonly dir: string; readonly entries: ReadonlyMap<string, string> }>>
  count: number
}
let chrootPoolState: ChrootPool | undefined

/** The prefix of a process's pool directory in the temp dir: `b3-chroots-<pid>-<random>`. */
const chrootsPrefix = "b3-chroots-"

/** A fresh name in the pool's directory (made, 0755, on first use: the build user walks through it). */
const poolPlace = (pool: ChrootPool): string => {
  if (pool.dir === undefined) {
    const poolDir = mkdtempSync(join(tmpdir(), `${chrootsPrefix}${process.pid}-`))
    chmodSync(poolDir, 0o755)
    pool.dir = poolDir
  }
  return join(pool.dir, String(pool.count++))
}

export const chrootPool: Effect.Effect<void, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => { chrootPoolState ??= { dir: undefined, free: new Map(), stores: new Map(), count: 0 } }),
  () => Effect.suspend(() => {
    const pool = chrootPoolState
    chrootPoolState = undefined
    return pool?.dir === undefined ? Effect.void : removeLater(pool.dir)
  })
)

/**
 * The chroot tree of a build. Inside a `chrootPool` scope it lies in the pool's directory: one that
 * an earlier build with the same `key` (the same entries, group) used is taken as it is, else
 * `create` makes one there; when the scope closes it is free again, its /tmp emptied (the only
 * place in it a builder can write: the store directory is bound over it from elsewhere, and
 * /dev/shm and /dev/pts are mounts of the build's own namespace). Outside a pool it is made at
 * `<parent>/root` and removed with the parent. A tree is ~30 directories, files and links: on a
 * busy disk, making and removing them cost 10–45 ms per build.
 */
export const chrootTree = (
  parent: string, key: string, drvName: string, create: (dir: string) => void
): Effect.Effect<string, SandboxSetupFailed, Scope.Scope> => {
  let pool: ChrootPool | undefined
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        pool = chrootPoolState
        if (pool === undefined) {
          const dir = join(parent, "root")
          create(dir)
          return dir
        }
        const free = pool.free.get(key)?.pop()
        if (free !== undefined) return free
        const dir = poolPlace(pool)
        create(dir)
        return dir
      },
      catch: setupError(drvName, "creating the chroot")
    }),
    (dir) => Effect.suspend(() => {
      if (pool === undefined || pool !== chrootPoolState) return Effect.void // removed with its parent, or with the pool
      if (mountPointsUnder(dir).length > 0) return Effect.void // (never: the mounts live in the build's namespace)
      try {
        const tmp = join(dir, "tmp")
        for (const name of readdirSync(tmp)) rmSync(join(tmp, name), { recursive: true, force: true })
      } catch {
        return removeLater(dir)
      }
      const free = pool.free.get(key)
      if (free === undefined) pool.free.set(key, [dir])
      else free.push(dir)
      return Effect.void
    })
  )
}

/** What makes two store directory entries alike (an entry is kept for the next build only if it is the same). */
const signature = (e: SkeletonEntry): string => {
  switch (e.kind) {
    case "dir": return `dir ${e.mode} ${e.buildGroup === true}`
    case "file": return `file ${e.mode} ${e.contents}`
    case "symlink": return `symlink ${e.target}`
    case "link": return `link ${e.source}`
  }
}

/**
 * The chroot's store directory of a build, with `entries` (relative to it, "/" the directory
 * itself: the inputs' mount points and links); the builder makes its outputs there, and they are
 * renamed into the store from there. Inside a `chrootPool` scope it lies in the pool's directory:
 * one a finished build used is taken, entries this build does not want removed and the missing
 * ones made, so consecutive builds with mostly the same inputs (a chain) make and remove a few
 * entries instead of every input's. When the scope closes (the outputs moved into the store, or
 * the build failed), whatever the builder left in it is removed and it is free again; a builder
 * cannot change the entries themselves (root's, in a sticky directory). Outside a pool, or with
 * entries below the top level (sandbox-paths in the store), it is made at `<parent>/store` and
 * removed with the parent.
 */
export const chrootStore = (
  parent: string, entries: ReadonlyArray<SkeletonEntry>, buildGid: number, drvName: string
): Effect.Effect<string, SandboxSetupFailed, Scope.Scope> => {
  const wanted = new Map(entries.filter((e) => e.path !== "/").map((e) => [e.path.slice(1), e]))
  const flat = [...wanted.keys()].every((name) => !name.includes("/"))
  let pool: ChrootPool | undefined
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        pool = flat ? chrootPoolState : undefined
        if (pool === undefined) {
          const dir = join(parent, "store")
          createSkeleton(dir, entries, buildGid)
          return dir
        }
        const free = pool.stores.get(buildGid)?.pop()
        if (free !== undefined) {
          try {
            for (const [name, sig] of free.entries) {
              const want = wanted.get(name)
              if (want === undefined || signature(want) !== sig) rmSync(join(free.dir, name), { recursive: true, force: true })
            }
            createSkeleton(free.dir, [...wanted].filter(([name, e]) => free.entries.get(name) !== signature(e)).map(([, e]) => e), buildGid)
            return free.dir
          } catch {
            removeTree(free.dir).pipe(Effect.runSync)
          }
        }
        const dir = poolPlace(pool)
        createSkeleton(dir, entries, buildGid)
        return dir
      },
      catch: setupError(drvName, "creating the chroot's store directory")
    }),
    (dir) => Effect.suspend(() => {
      if (pool === undefined || pool !== chrootPoolState) return Effect.void // removed with its parent, or with the pool
      if (mountPointsUnder(dir).length > 0) return Effect.void
      // hard links to the inputs' files go too: one kept would hold a store file's inode after the
      // path is deleted (the collector then leaves its `.links` entry, which has a second link)
      const kept = new Map([...wanted].filter(([, e]) => e.kind !== "link"))
      try {
        for (const name of readdirSync(dir)) if (!kept.has(name)) rmSync(join(dir, name), { recursive: true, force: true })
      } catch {
        return removeLater(dir)
      }
      const free = { dir, entries: new Map([...kept].map(([name, e]) => [name, signature(e)])) }
      const stores = pool.stores.get(buildGid)
      if (stores === undefined) pool.stores.set(buildGid, [free])
      else stores.push(free)
      return Effect.void
    })
  )
}
