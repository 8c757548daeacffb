/**
 * Startup recovery of a local store: the temporary trees that b3 processes which are gone left
 * behind are removed. Nothing else is touched: every name removed is one of b3's own temporary
 * names (`<pid>-<tag>-<random>` in b3's temporary directory, `.b3-tmp-<pid>-…` in the store
 * directory) whose owner is provably dead (no process has that pid). Entries of other programs —
 * Nix's `add-*` and `*.chroot` directories while it adds or builds — are never removed here; a store
 * entry left without a database row by a crashed adder is garbage that the collector removes.
 */
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { removeTree } from "./fs-ops.ts"
import type { LocalStoreLayout } from "./layout.ts"
import { processAlive } from "../../io/process-alive.ts"
import { tempOwner, type TempPlace } from "./temp-roots.ts"

/** Where b3 put temporary trees in earlier versions (and still does when b3-tmp is on another file system). */
const legacyPlace = (layout: LocalStoreLayout): TempPlace => ({ dir: layout.realStoreDir, prefix: ".b3-tmp-" })

/** Removes dead processes' temporary trees; gives how many were removed. */
export const recover = (layout: LocalStoreLayout, place: TempPlace): number => {
  let removed = 0
  const places = place.dir === layout.realStoreDir ? [place] : [place, legacyPlace(layout)]
  for (const { dir, prefix } of places) {
    for (const name of readdirSync(dir)) {
      const owner = tempOwner({ dir, prefix }, name)
      if (owner === undefined || processAlive(owner)) continue
      removeTree(join(dir, name))
      removed++
    }
  }
  return removed
}
