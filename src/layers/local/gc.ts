/**
 * Garbage collection of a local store. Roots are the symlinks under `gcroots/` (followed one
 * level further when they point at a symlink outside the store, like a `result` link) and the
 * temporary roots of live processes; everything their closure reaches is kept. The whole
 * collection runs in one write transaction, so no path can become valid (or referenced) in
 * between; dead paths are unregistered referrers first and their contents moved aside, then
 * removed after the commit.
 */
import { lstatSync, readdirSync, readlinkSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import type { StoreDatabase } from "./database.ts"
import { removeTree, rename } from "./fs-ops.ts"
import type { LocalStoreLayout } from "./layout.ts"
import { readTempRoots } from "./temp-roots.ts"
import { tempName } from "./add.ts"
import type { GcResult } from "../../services/store-maintenance.ts"


/** The store path (logical, full) a file-system path lies in, if any. */
const storePathOf = (layout: LocalStoreLayout, target: string): string | undefined => {
  const prefix = layout.storeDir + "/"
  if (!target.startsWith(prefix)) return undefined
  const name = target.slice(prefix.length).split("/")[0]!
  return name ? prefix + name : undefined
}

export const findRoots = (layout: LocalStoreLayout): ReadonlyArray<string> => {
  const roots = new Set<string>()
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
      let target = resolve(dirname(path), readlinkSync(path))
      let root = storePathOf(layout, target)
      if (!root) {
        // an indirect root: a link to a link (e.g. a `result` symlink) that points into the store
        try {
          if (lstatSync(target).isSymbolicLink()) {
            target = resolve(dirname(target), readlinkSync(target))
            root = storePathOf(layout, target)
          }
        } catch { /* a dangling indirect root keeps nothing */ }
      }
      if (root) roots.add(root)
    }
  }
  for (const path of readTempRoots(layout)) {
    const root = storePathOf(layout, path)
    if (root) roots.add(root)
  }
  return [...roots].sort()
}

const sizeOf = (path: string): number => {
  let total = 0
  const stack = [path]
  while (stack.length > 0) {
    const p = stack.pop()!
    const st = lstatSync(p)
    total += st.size
    if (st.isDirectory()) for (const name of readdirSync(p)) stack.push(join(p, name))
  }
  return total
}

export const collectGarbage = (layout: LocalStoreLayout, db: StoreDatabase, options: { readonly dryRun?: boolean } = {}): GcResult => {
  const trash: Array<string> = []
  const result = db.immediate(() => {
    const roots = findRoots(layout)
    const valid = new Set(db.allValidPaths())
    const live = new Set<string>()
    const frontier = roots.filter((r) => valid.has(r))
    for (const r of frontier) live.add(r)
    while (frontier.length > 0) {
      const path = frontier.pop()!
      for (const ref of db.referencesOf(path)) if (!live.has(ref)) { live.add(ref); frontier.push(ref) }
    }
    const dead = [...valid].filter((p) => !live.has(p))
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
    let bytesFreed = 0
    for (const path of order) {
      const physical = join(layout.realStoreDir, path.slice(layout.storeDir.length + 1))
      try { bytesFreed += sizeOf(physical) } catch { /* contents already missing */ }
      if (options.dryRun) continue
      db.deletePath(path)
      try {
        const aside = tempName(layout, "gc")
        rename(physical, aside)
        trash.push(aside)
      } catch { /* contents already missing */ }
    }
    return { roots, deleted: order, bytesFreed }
  })
  for (const path of trash) removeTree(path)
  return result
}
