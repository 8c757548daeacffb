/**
 * Temporary GC roots: each b3 process that adds or uses paths lists them in
 * `<stateDir>/temproots/<pid>` (NUL-separated, as Nix does), so a concurrent garbage collection
 * keeps them while the process lives. The file is removed when the store is closed.
 */
import { appendFileSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import type { LocalStoreLayout } from "./layout.ts"

export const processAlive = (pid: number): boolean => {
  if (pid === process.pid) return true
  try { process.kill(pid, 0); return true } catch (e) { return (e as NodeJS.ErrnoException).code === "EPERM" }
}

export const tempRootsFile = (layout: LocalStoreLayout) => join(layout.tempRootsDir, String(process.pid))

export const addTempRoot = (layout: LocalStoreLayout, path: string): void => appendFileSync(tempRootsFile(layout), path + "\0")

export const removeTempRoots = (layout: LocalStoreLayout): void => rmSync(tempRootsFile(layout), { force: true })

/** Paths listed as temporary roots by processes that are still alive. */
export const readTempRoots = (layout: LocalStoreLayout): ReadonlyArray<string> => {
  const out: Array<string> = []
  let names: Array<string> = []
  try { names = readdirSync(layout.tempRootsDir) } catch { return out }
  for (const name of names) {
    const pid = Number(name)
    if (!Number.isInteger(pid) || !processAlive(pid)) continue
    try { out.push(...readFileSync(join(layout.tempRootsDir, name), "utf8").split("\0").filter((p) => p.length > 0)) } catch { /* gone meanwhile */ }
  }
  return out
}
