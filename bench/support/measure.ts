/**
 * Measuring commands for the benchmarks: wall time and peak RSS of a whole process tree, via
 * GNU time (`/usr/bin/time -f`), best of N runs. Benchmarks compare b3 with Nix in the same run,
 * so the numbers that matter are the ratios.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Measurement {
  readonly seconds: number
  readonly peakRssMiB: number
}

export const nixEnv = { ...process.env, NIX_CONFIG: "experimental-features = nix-command\nsubstituters =" }

/** Runs a setup command (untimed) and returns its trimmed stdout; throws with its stderr if it fails. */
export const runOrThrow = (command: string, args: ReadonlyArray<string>): string => {
  const result = spawnSync(command, args, { env: nixEnv, encoding: "utf8", maxBuffer: 1 << 28 })
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr}`)
  return result.stdout.trim()
}

/**
 * Runs `sh -c script` `runs` times (with `before` run untimed before each), returns the fastest run
 * and the highest peak RSS. A script given as a function gets the run's number, so that each run can
 * write to a fresh directory: removing the previous run's 100,000 files right before would measure
 * ext4's inode allocator instead (for some minutes after a mass deletion it skips the recently freed
 * inodes one by one on every create, which made creating 100k files 5–10× slower, for Nix and b3 alike).
 */
export const measure = (script: string | ((run: number) => string), options: { runs?: number; before?: string; env?: NodeJS.ProcessEnv } = {}): Measurement => {
  const dir = mkdtempSync(join(tmpdir(), "b3-bench-"))
  const out = join(dir, "time")
  let best = Infinity
  let peak = 0
  try {
    for (let i = 0; i < (options.runs ?? 3); i++) {
      if (options.before) spawnSync("sh", ["-c", options.before], { stdio: "ignore", env: options.env ?? nixEnv })
      const command = typeof script === "string" ? script : script(i)
      const result = spawnSync("/usr/bin/time", ["-f", "%e %M", "-o", out, "sh", "-c", command], { stdio: ["ignore", "ignore", "pipe"], env: options.env ?? nixEnv })
      if (result.status !== 0) throw new Error(`benchmark command failed: ${command}\n${result.stderr}`)
      const [seconds, kib] = readFileSync(out, "utf8").trim().split(/\s+/).slice(-2).map(Number)
      best = Math.min(best, seconds!)
      peak = Math.max(peak, kib! / 1024)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return { seconds: best, peakRssMiB: peak }
}

export interface Row {
  readonly case: string
  readonly b3: Measurement
  readonly nix: Measurement
}

export const printTable = (title: string, rows: ReadonlyArray<Row>): void => {
  console.log(`\n${title}\n`)
  console.log("| case | b3 time (s) | Nix time (s) | ratio b3/Nix | b3 peak RSS (MiB) | Nix peak RSS (MiB) |")
  console.log("|---|---|---|---|---|---|")
  // sub-second cases (a single request) keep three decimals
  const secs = (s: number) => s < 1 ? s.toFixed(3) : s.toFixed(2)
  for (const r of rows) {
    console.log(`| ${r.case} | ${secs(r.b3.seconds)} | ${secs(r.nix.seconds)} | ${(r.b3.seconds / r.nix.seconds).toFixed(2)} | ${r.b3.peakRssMiB.toFixed(0)} | ${r.nix.peakRssMiB.toFixed(0)} |`)
  }
  console.log("\n" + JSON.stringify({ benchmark: title, rows: rows.map((r) => ({ ...r, ratio: r.b3.seconds / r.nix.seconds })) }))
}
