/**
 * Nix's `canonicalisePathMetaData` for a freshly built output: every file, directory and symlink
 * gets mtime 1 (the epoch + 1 s), permissions 0444, or 0555 when the owner may execute it (no
 * write bits, no setuid/setgid/sticky), and — when we are root — owner root:root. Symlinks keep
 * their (meaningless) mode.
 */
import { chmodSync, lchownSync, lstatSync, lutimesSync, readdirSync } from "node:fs"
import { Effect } from "effect"
import { CanonicaliseFailed } from "./errors.ts"

/** The mode Nix gives a non-symlink: 0555 if user-executable, else 0444. */
export const canonicalMode = (mode: number): number => (mode & 0o100 ? 0o555 : 0o444)

const canonicaliseTree = (root: string, asRoot: boolean) => {
  // Post-order (children before their directory), so read-only directories are finished last.
  // A directory's final mode comes from its mode before we opened it up to descend into it.
  const pending: Array<{ path: string; originalMode?: number }> = [{ path: root }]
  while (pending.length > 0) {
    const top = pending[pending.length - 1]!
    const st = lstatSync(top.path)
    if (st.isDirectory() && top.originalMode === undefined) {
      top.originalMode = st.mode
      if (!asRoot) chmodSync(top.path, 0o700 | (st.mode & 0o777))
      for (const name of readdirSync(top.path)) pending.push({ path: `${top.path}/${name}` })
      continue
    }
    pending.pop()
    if (asRoot && (st.uid !== 0 || st.gid !== 0)) lchownSync(top.path, 0, 0)
    if (!st.isSymbolicLink()) chmodSync(top.path, canonicalMode(top.originalMode ?? st.mode))
    lutimesSync(top.path, 1, 1)
  }
}

/** Canonicalises an output in place (see the module comment). */
export const canonicalise = (path: string): Effect.Effect<void, CanonicaliseFailed> =>
  Effect.try({
    try: () => canonicaliseTree(path, process.getuid?.() === 0),
    catch: (e) => new CanonicaliseFailed({ path, reason: String(e) })
  })
