/**
 * Startup recovery of a local store: temporary trees of b3 processes that are gone are removed,
 * and store entries without a database row (contents of an add that crashed between rename and
 * commit) are removed, inside a write transaction so no live adder is racing it. Entries Nix is
 * adding right now (it holds `<path>.lock`) are left alone.
 */
import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import type { StoreDatabase } from "./database.ts"
import { removeTree } from "./fs-ops.ts"
import { tempPrefix, type LocalStoreLayout } from "./layout.ts"
import { processAlive } from "./temp-roots.ts"

export interface RecoveryReport {
  readonly removedTemporaries: number
  readonly removedUnregistered: number
}

export const recover = (layout: LocalStoreLayout, db: StoreDatabase): RecoveryReport =>
  db.immediate(() => {
    let removedTemporaries = 0
    let removedUnregistered = 0
    const entries = readdirSync(layout.realStoreDir)
    const present = new Set(entries)
    const valid = new Set(db.allValidPaths().map((p) => p.slice(layout.storeDir.length + 1)))
    for (const name of entries) {
      if (name.startsWith(tempPrefix)) {
        const pid = Number(name.slice(tempPrefix.length).split("-")[0])
        if (!Number.isInteger(pid) || !processAlive(pid)) { removeTree(join(layout.realStoreDir, name)); removedTemporaries++ }
        continue
      }
      if (name.startsWith(".") || name.endsWith(".lock") || valid.has(name)) continue
      if (present.has(`${name}.lock`)) continue
      removeTree(join(layout.realStoreDir, name))
      removedUnregistered++
    }
    return { removedTemporaries, removedUnregistered }
  })

export const needsStoreDir = (layout: LocalStoreLayout): boolean => !existsSync(layout.realStoreDir)
