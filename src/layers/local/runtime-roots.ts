/**
 * Runtime roots: store paths that running processes use, which Nix's collector keeps alive
 * (gc.cc `findRuntimeRoots`). On Linux they are read from /proc: every process's `exe` and `cwd`
 * links, its open files (`fd/*`), the files it has mapped (`maps`) and store paths named in its
 * environment (`environ`), plus the helpers the kernel runs (`sys/kernel/modprobe`, `fbsplash`,
 * `poweroff_cmd`).
 *
 * The scan is total: processes exit while it runs and some entries are unreadable (other users'
 * processes when not root, kernel threads); what cannot be read is skipped. A chroot store's paths
 * are found under its real store dir (what processes outside see) and under its logical one (what a
 * build sandbox, which mounts the store there, sees).
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs"
import { join } from "node:path"
import * as StorePath from "../../core/store-path.ts"
import { Result } from "effect"
import type { GcRoot } from "../../services/store-maintenance.ts"

/** Where each link or file that names a path was seen, by the (absolute) path it names. */
export type UncheckedRoots = Map<string, Set<string>>

/** What `FindRoots` reports for a root found in another process when the client may not see it. */
export const censored = "{censored}"

const add = (roots: UncheckedRoots, target: string, where: string) => {
  let set = roots.get(target)
  if (!set) roots.set(target, set = new Set())
  set.add(where)
}

const tryRead = <A>(f: () => A): A | undefined => {
  try { return f() } catch { return undefined }
}

const readProcLink = (file: string, roots: UncheckedRoots) => {
  const target = tryRead(() => readlinkSync(file))
  // sockets, pipes and anonymous inodes read as `socket:[…]` and the like: only paths count
  if (target !== undefined && target.startsWith("/")) add(roots, target, file)
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** A mapping line with a path (`address perms offset dev inode /path`); Nix's regex, so `… (deleted)` lines do not count. */
const mapLine = /^\s*\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\/\S+)\s*$/

/**
 * Every absolute path that a running process holds, from `procDir` (`/proc`; tests pass a fake
 * tree), with where it was seen (`/proc/123/fd/4`, `/proc/123/maps`, …). Store paths named in a
 * process's environment are found for each of `storeDirs`.
 */
export const scanProc = (storeDirs: ReadonlyArray<string>, procDir = "/proc"): UncheckedRoots => {
  const roots: UncheckedRoots = new Map()
  const inEnv = [...new Set(storeDirs)].map((dir) => new RegExp(`${escapeRegExp(dir)}/[0-9a-z]+[0-9a-zA-Z+\\-._?=]*`, "g"))
  for (const pid of tryRead(() => readdirSync(procDir)) ?? []) {
    if (!/^\d+$/.test(pid)) continue
    const dir = join(procDir, pid)
    readProcLink(join(dir, "exe"), roots)
    readProcLink(join(dir, "cwd"), roots)
    const fdDir = join(dir, "fd")
    const fds = tryRead(() => readdirSync(fdDir))
    if (fds === undefined) continue // gone, or not ours to see (Nix moves on to the next process too)
    for (const fd of fds) if (!fd.startsWith(".")) readProcLink(join(fdDir, fd), roots)
    const mapsFile = join(dir, "maps")
    const maps = tryRead(() => readFileSync(mapsFile, "utf8"))
    if (maps === undefined) continue
    for (const line of maps.split("\n")) {
      const m = mapLine.exec(line)
      if (m) add(roots, m[1]!, mapsFile)
    }
    const envFile = join(dir, "environ")
    const env = tryRead(() => readFileSync(envFile, "latin1"))
    if (env === undefined) continue
    for (const re of inEnv) for (const m of env.matchAll(re)) add(roots, m[0], envFile)
  }
  for (const name of ["modprobe", "fbsplash", "poweroff_cmd"]) {
    const file = join(procDir, "sys", "kernel", name)
    const text = tryRead(() => readFileSync(file, "utf8"))
    if (text !== undefined && text.trim() !== "") add(roots, text.replace(/\n$/, ""), file)
  }
  return roots
}

/**
 * The store paths (logical) among `unchecked` with the places that hold them: a path under
 * `realStoreDir` or `storeDir` whose first component is a store path name. With `censor`, the
 * places are replaced by `{censored}` (what Nix tells a client that is not trusted).
 */
export const storeRootsOf = (
  dirs: { readonly storeDir: string; readonly realStoreDir: string },
  unchecked: UncheckedRoots,
  censor: boolean
): ReadonlyArray<GcRoot> => {
  const found = new Map<string, Set<string>>()
  for (const [target, links] of unchecked) {
    const prefix = [dirs.realStoreDir, dirs.storeDir].find((d) => target.startsWith(d + "/"))
    if (prefix === undefined) continue
    const name = target.slice(prefix.length + 1).split("/")[0]!
    if (Result.isFailure(StorePath.parseBaseName(name))) continue
    const path = `${dirs.storeDir}/${name}`
    let set = found.get(path)
    if (!set) found.set(path, set = new Set())
    for (const link of censor ? [censored] : links) set.add(link)
  }
  const roots: Array<GcRoot> = []
  for (const [target, links] of [...found].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
    for (const link of [...links].sort()) roots.push({ link, target })
  }
  return roots
}

/** The runtime roots of a store: paths in it that running processes hold (validity is the caller's to check). */
export const findRuntimeRoots = (
  dirs: { readonly storeDir: string; readonly realStoreDir: string },
  options: { readonly censor?: boolean; readonly procDir?: string } = {}
): ReadonlyArray<GcRoot> =>
  storeRootsOf(dirs, scanProc([dirs.realStoreDir, dirs.storeDir], options.procDir), options.censor ?? false)
