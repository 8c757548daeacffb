/**
 * bench/nar: b3 against Nix 2.8 in the same run, on (a) one 1 GiB file and (b) 100,000 small files
 * in nested directories:
 *   - `b3 nar dump P | sha256sum`  vs `nix-store --dump P | sha256sum`
 *   - `b3 hash path P`             vs `nix-hash --type sha256 P`
 *   - `b3 nar restore T < P.nar`   vs `nix-store --restore T < P.nar`   (a fresh T each run, `sync` before)
 * plus the bare CLI start (`b3 --version` vs `nix-store --version`), which every b3 time includes.
 * Wall time is the best of N runs (the first run also warms the page cache), peak RSS the highest.
 *   npm run bench:nar [-- --quick] [-- --runs N]
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { bigFile, manySmallFiles } from "../support/inputs.ts"
import { measure, nixEnv, printTable, type Row } from "../support/measure.ts"

const quick = process.argv.includes("--quick")
const runsArg = process.argv.indexOf("--runs")
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : quick ? 2 : 3
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
const work = mkdtempSync(join(tmpdir(), "b3-bench-nar-"))

const output = (script: string): string => {
  const r = spawnSync("sh", ["-c", script], { env: nixEnv, encoding: "utf8", maxBuffer: 1 << 20 })
  if (r.status !== 0) throw new Error(`${script} failed: ${r.stderr}`)
  return r.stdout.trim()
}

try {
  // the CLI bundle is rebuilt when sources changed: do that before anything is timed
  output(`${b3} --version`)
  const inputs = [
    { label: quick ? "(a) 64 MiB file" : "(a) 1 GiB file", path: bigFile(join(work, "big"), quick ? 64 : 1024) },
    { label: quick ? "(b) 10,000 small files" : "(b) 100,000 small files", path: manySmallFiles(join(work, "small"), quick ? 10_000 : 100_000) }
  ]
  const rows: Array<Row> = [{
    case: "CLI start (--version)",
    b3: measure(`${b3} --version > /dev/null`, { runs }),
    nix: measure(`nix-store --version > /dev/null`, { runs })
  }]
  for (const [index, { label, path }] of inputs.entries()) {
    const nar = `${path}.nar`
    output(`nix-store --dump ${path} > ${nar}`)
    // the same answers before anything is timed
    const expected = output(`sha256sum < ${nar}`).split(" ")[0]
    if (output(`${b3} nar dump ${path} | sha256sum`).split(" ")[0] !== expected) throw new Error(`b3 nar dump ${path} differs from nix-store --dump`)
    if (output(`${b3} hash path --base16 ${path}`) !== output(`nix-hash --type sha256 ${path}`)) throw new Error(`b3 hash path ${path} differs from nix-hash`)
    const target = join(work, `restored-${index}`)
    output(`${b3} nar restore ${target} < ${nar}`)
    if (output(`nix-store --dump ${target} | sha256sum`).split(" ")[0] !== expected) throw new Error(`b3 nar restore of ${nar} differs`)
    rows.push(
      {
        case: `${label}: dump \\| sha256sum`,
        b3: measure(`${b3} nar dump ${path} | sha256sum > /dev/null`, { runs }),
        nix: measure(`nix-store --dump ${path} | sha256sum > /dev/null`, { runs })
      },
      {
        case: `${label}: hash path`,
        b3: measure(`${b3} hash path ${path} > /dev/null`, { runs }),
        nix: measure(`nix-hash --type sha256 ${path} > /dev/null`, { runs })
      },
      {
        case: `${label}: restore`,
        // a fresh target each run, all removed at the end (see `measure` for why not before each run)
        b3: measure((run) => `${b3} nar restore ${target}-b3-${run} < ${nar}`, { runs, before: "sync" }),
        nix: measure((run) => `nix-store --restore ${target}-nix-${run} < ${nar}`, { runs, before: "sync" })
      }
    )
    rmSync(nar, { force: true })
  }
  printTable("bench/nar: NAR dump, hash and restore (b3 vs Nix 2.8)", rows)
} finally {
  rmSync(work, { recursive: true, force: true })
}
