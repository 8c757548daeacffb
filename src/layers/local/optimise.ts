/**
 * Hard-link deduplication of a local store, as Nix 2.8's optimise-store.cc does, so that Nix and
 * b3 share one `.links` directory: every regular file of a store path is hashed (sha256 of its NAR
 * serialisation, which includes the executable bit), `<realStoreDir>/.links/<nix-base32 hash>` is
 * made a hard link to the first file with that content, and every later file with the same hash is
 * replaced (atomically, by renaming a temporary link over it) with a link to that one.
 *
 * Only regular files are linked (Nix 2.8 on Linux links no symlinks); writable files are skipped
 * as suspicious; a directory that has to be opened up for the rename gets back its canonical mode
 * and mtime; a file whose link count is at the file system's limit (EMLINK) stays as it is. The
 * collector removes links no store path uses any more (`removeUnusedLinks`).
 */
import { Effect } from "effect"
import { chmodSync, linkSync, lstatSync, lutimesSync, mkdirSync, readdirSync, renameSync, unlinkSync, type BigIntStats } from "node:fs"
import { dirname, join } from "node:path"
import * as Hash from "../../core/hash.ts"
import { narDigestOfPath } from "../../nar/fs/index.ts"
import { canonicalMode } from "../../io/canonicalise.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import type { OptimiseResult } from "../../services/store-maintenance.ts"
import type { LocalStoreLayout } from "./layout.ts"

export const linksDirOf = (layout: LocalStoreLayout): string => join(layout.realStoreDir, ".links")

const codeOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

const messageOf = (e: unknown) => e instanceof Error ? e.message : String(e)

interface Run {
  readonly uri: string
  readonly layout: LocalStoreLayout
  readonly linksDir: string
  /** Inodes already in `.links` (Nix's InodeHash): files with these are linked already. */
  readonly inodes: Set<bigint>
  readonly stats: { filesLinked: number; bytesFreed: number; blocksFreed: number }
  readonly warn: (message: string) => void
}

/** A step on the file system; a path that vanished (the collector deleted it meanwhile) gives `undefined`. */
const step = <A>(run: Run, operation: string, f: () => A): Effect.Effect<A | undefined, StoreIoError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(f())
    } catch (e) {
      return codeOf(e) === "ENOENT" ? Effect.succeed(undefined) : Effect.fail(new StoreIoError({ store: run.uri, operation, reason: messageOf(e) }))
    }
  })

const lstat = (path: string): BigIntStats => lstatSync(path, { bigint: true })

/** Links one file (or every file under a directory) into `.links` (Nix's `optimisePath_`). */
const optimiseTree = (run: Run, path: string): Effect.Effect<void, StoreIoError> => Effect.gen(function*() {
  const st = yield* step(run, `stat '${path}'`, () => lstat(path))
  if (st === undefined) return
  if (st.isDirectory()) {
    const names = yield* step(run, `read directory '${path}'`, () => readdirSync(path))
    for (const name of (names ?? []).sort()) yield* optimiseTree(run, join(path, name))
    return
  }
  if (!st.isFile()) return
  if ((st.mode & 0o200n) !== 0n) {
    run.warn(`skipping suspicious writable file '${path}'`)
    return
  }
  if (st.nlink > 1n && run.inodes.has(st.ino)) return // already linked
  const digest = yield* narDigestOfPath(path).pipe(Effect.map((d) => d.hash), Effect.catch((e) =>
    e._tag === "FileNotFound" || (e._tag === "NarIoError" && e.code === "ENOENT") ? Effect.succeed(undefined)
      : Effect.fail(new StoreIoError({ store: run.uri, operation: `hash '${path}'`, reason: e.message }))))
  if (digest === undefined) return
  const linkPath = join(run.linksDir, Hash.encode(digest, "base32"))

  // a link whose size differs from the file's was corrupted: drop it (Nix only warns and unlinks)
  const existing = yield* step(run, `stat '${linkPath}'`, () => lstat(linkPath))
  if (existing !== undefined && existing.size !== st.size) {
    run.warn(`removing corrupted link '${linkPath}'`)
    yield* step(run, `remove '${linkPath}'`, () => unlinkSync(linkPath))
  }
  if (existing === undefined || existing.size !== st.size) {
    // the first file with this content becomes the link
    const linked = yield* Effect.try({
      try: () => { linkSync(path, linkPath); return "linked" as const },
      catch: (e) => e
    }).pipe(Effect.catch((e): Effect.Effect<"exists" | "skip", StoreIoError> =>
      codeOf(e) === "EEXIST" ? Effect.succeed("exists") // another process made it meanwhile
        : codeOf(e) === "ENOSPC" || codeOf(e) === "ENOENT" || codeOf(e) === "EMLINK" ? Effect.succeed("skip") // full directory index, vanished file, too many links
        : Effect.fail(new StoreIoError({ store: run.uri, operation: `link '${linkPath}' to '${path}'`, reason: messageOf(e) }))))
    if (linked === "linked") { run.inodes.add(st.ino); return }
    if (linked === "skip") return
  }

  const stLink = yield* step(run, `stat '${linkPath}'`, () => lstat(linkPath))
  if (stLink === undefined || stLink.ino === st.ino) return

  // Replace the file by a link to the same content: make its directory writable (unless it is the
  // store itself), link a temporary name to the link and rename it over the file.
  const dir = dirname(path)
  const toggle = dir !== run.layout.realStoreDir
  const dirStat = toggle ? yield* step(run, `stat '${dir}'`, () => lstatSync(dir)) : undefined
  if (toggle && dirStat === undefined) return
  const restore = Effect.sync(() => {
    if (!dirStat) return
    try {
      chmodSync(dir, canonicalMode(dirStat.mode))
      lutimesSync(dir, dirStat.atime, 1)
    } catch { /* Nix ignores a failure here too */ }
  })
  yield* Effect.gen(function*() {
    if (dirStat) yield* step(run, `make '${dir}' writable`, () => chmodSync(dir, (dirStat.mode & 0o7777) | 0o200))
    const tempLink = join(run.layout.realStoreDir, `.tmp-link-${process.pid}-${Math.floor(Math.random() * 2 ** 31)}`)
    const made = yield* Effect.try({ try: () => { linkSync(linkPath, tempLink); return true }, catch: (e) => e }).pipe(
      Effect.catch((e): Effect.Effect<boolean, StoreIoError> => {
        if (codeOf(e) === "EMLINK") {
          // too many links to one file (likely an empty one): leave this file as it is
          if (st.size > 0n) run.warn(`'${linkPath}' has maximum number of links`)
          return Effect.succeed(false)
        }
        if (codeOf(e) === "ENOENT") return Effect.succeed(false)
        return Effect.fail(new StoreIoError({ store: run.uri, operation: `link '${tempLink}' to '${linkPath}'`, reason: messageOf(e) }))
      }))
    if (!made) return
    const renamed = yield* Effect.try({ try: () => { renameSync(tempLink, path); return true }, catch: (e) => e }).pipe(
      Effect.catch((e): Effect.Effect<boolean, StoreIoError> => {
        try { unlinkSync(tempLink) } catch { /* as Nix: it only reports this */ }
        // some file systems count the link on the rename instead
        if (codeOf(e) === "EMLINK" || codeOf(e) === "ENOENT") return Effect.succeed(false)
        return Effect.fail(new StoreIoError({ store: run.uri, operation: `rename '${tempLink}' to '${path}'`, reason: messageOf(e) }))
      }))
    if (!renamed) return
    run.stats.filesLinked++
    run.stats.bytesFreed += Number(st.size)
    run.stats.blocksFreed += Number(st.blocks)
  }).pipe(Effect.ensuring(restore))
})

/** The inodes of `.links` (made if missing), as Nix loads them before optimising the whole store. */
const loadInodes = (uri: string, linksDir: string, all: boolean): Effect.Effect<Set<bigint>, StoreIoError> =>
  Effect.try({
    try: () => {
      const inodes = new Set<bigint>()
      mkdirSync(linksDir, { recursive: true }) // Nix makes it when it opens the store
      if (!all) return inodes
      for (const name of readdirSync(linksDir)) {
        try { inodes.add(lstat(join(linksDir, name)).ino) } catch { /* removed meanwhile */ }
      }
      return inodes
    },
    catch: (e) => new StoreIoError({ store: uri, operation: `open '${linksDir}'`, reason: messageOf(e) })
  })

export interface OptimiseOptions {
  /** Called for what Nix prints as warnings (writable files, corrupted links). */
  readonly warn?: (message: string) => void
}

/**
 * Hard-links identical files of `paths` (physical paths of store paths). `wholeStore` is Nix's
 * `optimiseStore` (files already in `.links` are skipped without hashing); otherwise it is Nix's
 * `optimisePath`, what `auto-optimise-store` does for each new path.
 */
export const optimisePaths = (
  ctx: { readonly uri: string; readonly layout: LocalStoreLayout },
  paths: ReadonlyArray<string>,
  options: OptimiseOptions & { readonly wholeStore?: boolean } = {}
): Effect.Effect<OptimiseResult, StoreIoError> => Effect.gen(function*() {
  const linksDir = linksDirOf(ctx.layout)
  const inodes = yield* loadInodes(ctx.uri, linksDir, options.wholeStore ?? false)
  const run: Run = {
    uri: ctx.uri, layout: ctx.layout, linksDir, inodes,
    stats: { filesLinked: 0, bytesFreed: 0, blocksFreed: 0 },
    warn: options.warn ?? (() => {})
  }
  for (const path of paths) yield* optimiseTree(run, path)
  return { ...run.stats }
})

/**
 * Removes the entries of `.links` that no store path uses any more (link count 1), as Nix's
 * collector does after deleting; returns how many it removed. A missing `.links` is nothing to do.
 * (Their bytes are not counted: as in Nix, deleting a path counted its files with two links.)
 */
export const removeUnusedLinks = (layout: LocalStoreLayout): number => {
  const linksDir = linksDirOf(layout)
  let names: Array<string>
  try { names = readdirSync(linksDir) } catch { return 0 }
  let removed = 0
  for (const name of names) {
    const path = join(linksDir, name)
    try {
      const st = lstatSync(path)
      if (st.nlink !== 1) continue
      unlinkSync(path)
      removed++
    } catch { /* removed meanwhile */ }
  }
  return removed
}
