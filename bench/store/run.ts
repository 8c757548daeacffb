/**
 * bench/store: `b3 store add` vs `nix-store --store ROOT --add` on one 1 GiB file and on a tree
 * of 100,000 small files, in the same run; each into a fresh chroot store. Time ratio and peak RSS.
 *   npm run bench:store [-- --quick]
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { bigFile, manySmallFiles } from "../support/inputs.ts"
import { measure, printTable, type Row } from "../support/measure.ts"

const quick = process.argv.includes("--quick")
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
const work = mkdtempSync(join(tmpdir(), "b3-bench-store-"))
const cleanStores = `chmod -R u+w ${work}/b3-store ${work}/nix-store 2>/dev/null; rm -rf ${work}/b3-store ${work}/nix-store`
try {
  const inputs = [
    { case: `one ${quick ? 64 : 1024} MiB file`, path: bigFile(join(work, "big"), quick ? 64 : 1024) },
    { case: `${quick ? 10000 : 100000} small files`, path: manySmallFiles(join(work, "small"), quick ? 10_000 : 100_000) }
  ]
  const rows: Array<Row> = inputs.map((input) => ({
    case: input.case,
    b3: measure(`${b3} store add --store ${work}/b3-store ${input.path} > /dev/null`, { before: cleanStores, runs: 2 }),
    nix: measure(`nix-store --store ${work}/nix-store --add ${input.path} > /dev/null`, { before: cleanStores, runs: 2 })
  }))
  printTable("bench/store: adding to a local store", rows)
} finally {
  rmSync(work, { recursive: true, force: true })
}
