/**
 * Temporary GC roots and b3's temporary trees.
 *
 * Roots: each process that adds or uses paths lists them in `<stateDir>/temproots/<pid>`
 * (NUL-separated), holding a lock on the file while it lives, as Nix does (nix-locks.ts holds the
 * lock); a collector reads the files of live owners and deletes those of dead ones.
 *
 * Temporary trees (paths being added, outputs being moved in, garbage being removed) live in
 * `<stateDir>/b3-tmp/<pid>-<tag>-<random>`, outside the store directory, where Nix's collector
 * (which deletes every name in the store directory that is not a store path) cannot reach them.
 * When that directory is on another file system than the store, they live in the store directory
 * as `.b3-tmp-<pid>-…` instead (renames into place must stay within one file system).
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import type { StoreIoError } from "../../services/store-errors.ts"
import type { LocalStoreLayout } from "./layout.ts"
import type { NixLocks } from "./nix-locks.ts"
import { processAlive } from "../../io/process-alive.ts"


export const tempRootsFile = (layout: LocalStoreLayout, pid = process.pid) => join(layout.tempRootsDir, String(pid))

/** Where b3's temporary trees go: `<stateDir>/b3-tmp` when it shares the store's file system, else the store dir. */
export interface TempPlace {
  readonly dir: string
  /** Prefix of each name in `dir`. */
  readonly prefix: string
}

export const tempPlace = (layout: LocalStoreLayout): TempPlace => {
  const dir = join(layout.stateDir, "b3-tmp")
  mkdirSync(dir, { recursive: true })
  return statSync(dir).dev === statSync(layout.realStoreDir).dev ? { dir, prefix: "" } : { dir: layout.realStoreDir, prefix: ".b3-tmp-" }
}

/** The random part of this process's temporary names, drawn once, and the count of names given out. */
let tempSalt: string | undefined
let tempCount = 0
/**
 * A fresh temporary name of this process: a random part drawn once per process (names of an
 * earlier process with the same pid differ) and a counter (a random draw per name cost ~9 µs in a
 * loop, more under the daemon's load, for every small path it adds).
 */
export const tempName = (place: TempPlace, tag: string) =>
  // (`place.dir` is normalised, as `tempPlace` makes it: no `join` per name; the pid is read each time, as a
  // module evaluated into the CLI's startup snapshot must not keep the snapshot builder's)
  `${place.dir}/${place.prefix}${process.pid}-${tag}-${tempSalt ??= randomBytes(6).toString("hex")}${(tempCount++).toString(36)}`

/** The owner's pid of a temporary name in `place`, if the name is b3's. */
export const tempOwner = (place: TempPlace, name: string): number | undefined => {
  if (!name.startsWith(place.prefix)) return undefined
  const pid = Number(name.slice(place.prefix.length).split("-")[0])
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

/**
 * The temporary roots of live processes (store paths, printed); the files of dead owners are
 * deleted on the way, as Nix's collector does.
 */
export const liveTempRoots = (layout: LocalStoreLayout, locks: NixLocks, options: { readonly skipOwn?: boolean } = {}): Effect.Effect<ReadonlyArray<string>, StoreIoError> =>
  Effect.gen(function*() {
    let names: Array<string> = []
    try { names = readdirSync(layout.tempRootsDir) } catch { return [] }
    const roots: Array<string> = []
    for (const name of names) {
      if (name.startsWith(".")) continue
      if (options.skipOwn && name === String(process.pid)) continue
      const file = join(layout.tempRootsDir, name)
      if ((yield* locks.probe(file)) !== "alive") continue
      try { roots.push(...readFileSync(file, "utf8").split("\0").filter((p) => p.length > 0)) } catch { /* gone meanwhile */ }
    }
    return roots
  })
