/**
 * `b3 copy` against `nix copy` of the same paths from one file cache into fresh chroot stores: wall
 * time, CPU time (user + system) and peak RSS of the copying command, and b3 once more without
 * flushing to disk (B3_BENCH_NO_FSYNC=1, for measurement only) to show what durability costs (Nix 2.8
 * does not fsync store contents). Runs alternate (b3, b3 without fsync, Nix, b3, …) because the file
 * system's speed here drifts from minute to minute; the best of each is reported, with the ratios.
 */
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { nixEnv } from "./measure.ts"
import { best, loadAverage, timed, type Timed } from "./timed.ts"

const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))

export interface CopyComparison {
  readonly b3: Timed
  readonly b3NoFsync: Timed
  readonly nix: Timed
}

export const compareCopies = (options: {
  /** A directory for the targets (each run's is removed after it). */
  readonly work: string
  /** The file cache's directory. */
  readonly cache: string
  readonly paths: ReadonlyArray<string>
  readonly runs: number
  /** What is copied, for the table's title. */
  readonly title: string
}): CopyComparison => {
  const { work, cache, runs, title } = options
  const paths = options.paths.join(" ")
  const once = (label: string, i: number, command: (target: string) => string, env: NodeJS.ProcessEnv) => {
    const target = join(work, `${label}-${i}`)
    const load = loadAverage()
    const t = timed(command(target), env)
    console.error(`${label} run ${i + 1}: ${t.seconds.toFixed(2)} s wall, ${t.cpuSeconds.toFixed(2)} s CPU, ${t.peakRssMiB.toFixed(0)} MiB (load before: ${load})`)
    spawnSync("sh", ["-c", `chmod -R u+w ${target} 2>/dev/null; rm -rf ${target}`])
    return t
  }
  const b3Copy = (target: string) => `${b3} copy --from file://${cache} --to 'local?root=${target}' --no-check-sigs --quiet ${paths}`
  const nixCopy = (target: string) => `nix copy --from file://${cache} --to ${target} --no-check-sigs ${paths}`
  const all: Array<CopyComparison> = []
  for (let i = 0; i < runs; i++) {
    all.push({
      b3: once("b3", i, b3Copy, process.env),
      b3NoFsync: once("b3-nofsync", i, b3Copy, { ...process.env, B3_BENCH_NO_FSYNC: "1" }),
      nix: once("nix", i, nixCopy, nixEnv)
    })
  }
  const result = { b3: best(all.map((r) => r.b3)), b3NoFsync: best(all.map((r) => r.b3NoFsync)), nix: best(all.map((r) => r.nix)) }
  console.log(`\n${title}: b3 copy vs nix copy from a file cache into a fresh chroot store; best of ${runs}; load average at the end ${loadAverage()}\n`)
  console.log("| run | wall (s) | CPU (s) | peak RSS (MiB) | wall b3/Nix | CPU b3/Nix |")
  console.log("|---|---|---|---|---|---|")
  const line = (label: string, t: Timed) =>
    console.log(`| ${label} | ${t.seconds.toFixed(2)} | ${t.cpuSeconds.toFixed(2)} | ${t.peakRssMiB.toFixed(0)} | ${(t.seconds / result.nix.seconds).toFixed(2)} | ${(t.cpuSeconds / result.nix.cpuSeconds).toFixed(2)} |`)
  line("b3 copy (durable: fsync before registering)", result.b3)
  line("b3 copy without fsync (measurement only)", result.b3NoFsync)
  line("nix copy (no fsync)", result.nix)
  console.log(`\nfsync share of b3's wall time: ${(100 * (1 - result.b3NoFsync.seconds / result.b3.seconds)).toFixed(0)}%`)
  console.log("\n" + JSON.stringify({ benchmark: `${title} copy`, ...result }))
  return result
}
