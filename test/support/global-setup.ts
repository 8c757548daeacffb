/**
 * Vitest's global setup: one temporary parent directory for the per-process Nix cache
 * directories (see nix.ts), removed when the run ends, however its workers exit.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "b3-nix-caches-"))
  process.env.B3_TEST_NIX_CACHES = dir
  return () => rmSync(dir, { recursive: true, force: true })
}
