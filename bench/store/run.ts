/**
 * bench/store: `b3 store add` vs `nix-store --store ROOT --add` on one 1 GiB file and on a tree
 * of 100,000 small files, in the same run; each into a fresh chroot store. Time ratio and peak RSS.
 *   npm run bench:store [-- --quick]
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { bigFile, manySmallFiles } from "../support/inputs.ts"
import { measure, printTable, type Row } from "../support/measure.ts"

const quick = process.argv.includes("--quick")
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
const work = mkdtempSync(join(tmpdir(), "b3-bench-store-"))
try {
  const inputs = [
    { case: `one ${quick ? 64 : 1024} MiB file`, label: "big", path: bigFile(join(work, "big"), quick ? 64 : 1024) },
    { case: `${quick ? 10000 : 100000} small files`, label: "small", path: manySmallFiles(join(work, "small"), quick ? 10_000 : 100_000) }
  ]
  const rows: Array<Row> = inputs.map((input) => ({
    case: input.case,
    // a fresh store each run, all removed at the end (see `measure` for why not before each run)
    b3: measure((run) => `${b3} store add --store ${work}/b3-store-${input.label}-${run} ${input.path} > /dev/null`, { before: "sync", runs: 2 }),
    nix: measure((run) => `nix-store --store ${work}/nix-store-${input.label}-${run} --add ${input.path} > /dev/null`, { before: "sync", runs: 2 })
  }))
  printTable("bench/store: adding to a local store", rows)
} finally {
  spawnSync("chmod", ["-R", "u+w", work])
  rmSync(work, { recursive: true, force: true })
}
