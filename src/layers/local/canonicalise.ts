/**
 * Puts a tree into the canonical form Nix gives store contents: mtime 1, no write bits, regular
 * files 0444 (0555 when executable), directories 0555, owned by root when we are root.
 * Synchronous and iterative (no recursion limit); call it inside `Effect.try`.
 */
import { chmodSync, lchownSync, lstatSync, lutimesSync, readdirSync } from "node:fs"
import { join } from "node:path"

const isRoot = typeof process.getuid === "function" && process.getuid() === 0

const finish = (path: string, mode: number | undefined, uid: number, gid: number) => {
  if (isRoot && (uid !== 0 || gid !== 0)) lchownSync(path, 0, 0)
  if (mode !== undefined) chmodSync(path, mode)
  lutimesSync(path, 1, 1)
}

export const canonicalise = (root: string): void => {
  // Post-order: a directory is finished (made read-only) after everything in it.
  const stack: Array<{ path: string; expanded: boolean }> = [{ path: root, expanded: false }]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!
    const st = lstatSync(top.path)
    if (st.isDirectory() && !top.expanded) {
      top.expanded = true
      for (const name of readdirSync(top.path)) stack.push({ path: join(top.path, name), expanded: false })
      continue
    }
    stack.pop()
    if (st.isSymbolicLink()) finish(top.path, undefined, st.uid, st.gid)
    else if (st.isDirectory()) finish(top.path, 0o555, st.uid, st.gid)
    else finish(top.path, st.mode & 0o100 ? 0o555 : 0o444, st.uid, st.gid)
  }
}

/** Makes a tree writable again so it can be removed (store contents are read-only). */
export const makeWritable = (root: string): void => {
  const stack = [root]
  while (stack.length > 0) {
    const path = stack.pop()!
    let st
    try { st = lstatSync(path) } catch { continue }
    if (st.isDirectory()) {
      chmodSync(path, 0o755)
      for (const name of readdirSync(path)) stack.push(join(path, name))
    }
  }
}
