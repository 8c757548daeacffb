/**
 * Nix's `canonicalisePathMetaData`: every file, directory and symlink gets mtime 1 (the epoch + 1 s),
 * permissions 0444, or 0555 when the owner may execute it (no write bits, no setuid/setgid/sticky),
 * and — when we are root — owner root:root. Symlinks keep their (meaningless) mode.
 * Synchronous and iterative (no recursion limit); call it inside `Effect.try`.
 */
import { chmodSync, lchownSync, lstatSync, lutimesSync, readdirSync } from "node:fs"
import { join } from "node:path"

/** The mode Nix gives a non-symlink: 0555 if user-executable, else 0444. */
export const canonicalMode = (mode: number): number => (mode & 0o100 ? 0o555 : 0o444)

const isRoot = () => typeof process.getuid === "function" && process.getuid() === 0

export const canonicalise = (root: string): void => {
  const asRoot = isRoot()
  // Post-order (children before their directory), so read-only directories are finished last.
  // A directory's final mode comes from its mode before we opened it up to descend into it.
  const pending: Array<{ path: string; originalMode?: number }> = [{ path: root }]
  while (pending.length > 0) {
    const top = pending[pending.length - 1]!
    const st = lstatSync(top.path)
    if (st.isDirectory() && top.originalMode === undefined) {
      top.originalMode = st.mode
      if (!asRoot) chmodSync(top.path, 0o700 | (st.mode & 0o777))
      for (const name of readdirSync(top.path)) pending.push({ path: join(top.path, name) })
      continue
    }
    pending.pop()
    if (asRoot && (st.uid !== 0 || st.gid !== 0)) lchownSync(top.path, 0, 0)
    if (!st.isSymbolicLink()) chmodSync(top.path, canonicalMode(top.originalMode ?? st.mode))
    lutimesSync(top.path, 1, 1)
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
