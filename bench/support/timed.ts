/**
 * One timed run of a shell command through GNU time: wall seconds, CPU seconds (user + system, the
 * whole process tree) and peak RSS. For benchmarks whose runs need a fresh target each time.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Timed {
  readonly seconds: number
  readonly cpuSeconds: number
  readonly peakRssMiB: number
}

export const timed = (command: string, env: NodeJS.ProcessEnv = process.env): Timed => {
  const dir = mkdtempSync(join(tmpdir(), "b3-timed-"))
  const out = join(dir, "time")
  try {
    const result = spawnSync("/usr/bin/time", ["-f", "%e %U %S %M", "-o", out, "sh", "-c", command], { stdio: ["ignore", "ignore", "pipe"], env, maxBuffer: 1 << 26 })
    if (result.status !== 0) throw new Error(`benchmark command failed: ${command}\n${result.stderr.toString().slice(-4000)}`)
    const [seconds, user, system, kib] = readFileSync(out, "utf8").trim().split("\n").at(-1)!.split(/\s+/).map(Number)
    return { seconds: seconds!, cpuSeconds: user! + system!, peakRssMiB: kib! / 1024 }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The best (lowest wall time) of several runs; peak RSS is the highest seen. */
export const best = (runs: ReadonlyArray<Timed>): Timed => {
  const fastest = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a))
  return { ...fastest, peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)) }
}

export const loadAverage = (): string => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
