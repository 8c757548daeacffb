/**
 * bench/farm: the farm's scheduling overhead. N independent derivations whose builders sleep S
 * seconds, on R runners × J jobs (real PostgreSQL, s3rver as the shared cache, runners as
 * processes, as in test/farm), submitted with `b3 --json build --farm`; then the same graph
 * (salted apart) built locally with `b3 build --max-jobs R×J` on one store, as the baseline of
 * what the sandboxed builds themselves cost on this machine.
 *   npm run bench:farm [-- --n 60 --sleep 1 --runners 3 --jobs 2 --runs 1 --no-local --profile DIR]
 * Prints: the client's wall time and its phases, first build start → last build end, the slot
 * time per derivation beyond its sleep, per-build phases from the runners' logs, peak RSS of
 * the runners, and the load average (the machines are shared: read the ratios).
 */
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { createInterface } from "node:readline"
import { spawnB3, graphModule, startFarm } from "../../test/farm/support.ts"
import { postgresBin } from "../../test/support/postgres.ts"

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const n = arg("n", 60)
const sleep = arg("sleep", 1)
const runnerCount = arg("runners", 3)
const jobs = arg("jobs", 2)
const runs = arg("runs", 1)
const local = !process.argv.includes("--no-local")
const profileAt = process.argv.indexOf("--profile")
// --profile DIR: V8 CPU profiles of every b3 process (runners and clients) in DIR (runners are stopped with SIGTERM to write theirs)
if (profileAt >= 0) process.env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${process.argv[profileAt + 1]}`
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!
}
const pct = (xs: ReadonlyArray<number>, p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(s.length * p))]!
}

/**
 * A runner's builds laid on its `slots` job slots in start order: each build takes the slot that
 * freed first. A build starting on a freed slot adds the handoff gap (the slot's free time to the
 * start); the first build of each slot adds its start after the graph's first build start (the
 * time to fill the farm); what is left after each slot's last build until the runner's last build
 * end is the tail (no job left for it), which is the graph running out, not scheduling.
 */
const handoffGaps = (spans: ReadonlyArray<{ runner: string; from: number; to: number }>, slots: number, graphStart: number) => {
  const handoff: Array<number> = []
  const filling: Array<number> = []
  let tail = 0
  for (const runner of new Set(spans.map((s) => s.runner))) {
    const mine = spans.filter((s) => s.runner === runner).sort((a, b) => a.from - b.from)
    const free: Array<number> = []
    for (const b of mine) {
      if (free.length < slots) {
        filling.push(Math.max(0, b.from - graphStart))
        free.push(b.to)
        continue
      }
      free.sort((x, y) => x - y)
      handoff.push(Math.max(0, b.from - free[0]!))
      free[0] = b.to
    }
    const last = Math.max(...free)
    for (const f of free) tail += last - f
  }
  return { handoff, filling, tail }
}

const farm = await startFarm()
try {
  await Promise.all(Array.from({ length: runnerCount }, (_, i) => farm.startRunner(`r${i + 1}`, { maxJobs: jobs })))
  const query = (sql: string) => spawnSync(postgresBin("psql"), [farm.url, "-At", "-F", "\t", "-c", sql], { encoding: "utf8" }).stdout
    .split("\n").filter((l) => l.length > 0).map((l) => l.split("\t"))
  // B3_PG_STATS=1: the statements the farm ran, by count (pg_stat_statements)
  const pgStats = process.env.B3_PG_STATS === "1"
  if (pgStats) query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
  for (let run = 0; run < runs; run++) {
    if (pgStats) query("SELECT pg_stat_statements_reset()")
    const salt = `bench-${Date.now().toString(36)}-${run}`
    const env = { ...farm.env, B3_FARM_BUSYBOX: farm.busybox, B3_FARM_SHAPE: "independent", B3_FARM_N: String(n), B3_FARM_SLEEP: String(sleep), B3_FARM_SALT: salt, B3_FARM_TRACE: "1" }
    const store = farm.clientStore(salt)
    const runnerLines = [...farm.runners.values()].map((r) => r.lines.length)
    const started = Date.now()
    const client = spawnB3(["--json", "build", "--farm", farm.url, "--store", store, graphModule], env)
    const stamped: Array<{ at: number; line: string }> = []
    createInterface({ input: client.child.stderr! }).on("line", (line) => stamped.push({ at: Date.now(), line }))
    const result = await client.result
    const wall = Date.now() - started
    if (result.status !== 0) throw new Error(`farm build failed: ${result.stderr}`)
    const events = result.stdout.split("\n").filter((l) => l.startsWith("{\"event\"")).map((l) => JSON.parse(l) as { event: string; at: number; runner: string | null })
    const firstStart = Math.min(...events.filter((e) => e.event === "building").map((e) => e.at))
    const lastEnd = Math.max(...events.filter((e) => e.event === "built").map((e) => e.at))
    const span = lastEnd - firstStart
    const slots = runnerCount * jobs
    const perDrv = (span * slots - n * sleep * 1000) / n
    console.log(`\nrun ${run + 1}: ${n} × sleep ${sleep} s on ${runnerCount} runners × ${jobs} jobs (load before: ${load()})`)
    console.log(`  client wall ${wall} ms; submit → first build start ${firstStart - started} ms; first build start → last build end ${span} ms ` +
      `(ideal ${Math.ceil(n / slots) * sleep * 1000}); last build end → client exit ${started + wall - lastEnd} ms`)
    console.log(`  slot time beyond the sleep: ${perDrv.toFixed(0)} ms per derivation`)
    for (const s of stamped) if (/^farm trace: /.test(s.line)) console.log(`  ${s.line} (+${s.at - started} ms)`)
    // per-build phases from the runners' logs: "built DRV in T ms (fetch a ms, wait b ms, build c ms, push d ms)"
    const buildSpans: Array<{ runner: string; from: number; to: number }> = []
    const phases = { fetch: [] as Array<number>, wait: [] as Array<number>, build: [] as Array<number>, push: [] as Array<number>, total: [] as Array<number> }
    ;[...farm.runners.values()].forEach((r, i) => {
      for (const line of r.lines.slice(runnerLines[i])) {
        const m = / built \S+ in (\d+) ms \(fetch (\d+) ms, wait (\d+) ms, build (\d+) ms from (\d+), push (\d+) ms\)/.exec(line)
        if (!m) continue
        phases.total.push(Number(m[1])); phases.fetch.push(Number(m[2])); phases.wait.push(Number(m[3])); phases.build.push(Number(m[4])); phases.push.push(Number(m[6]))
        const from = Number(m[5])
        buildSpans.push({ runner: r.name, from, to: from + Number(m[4]) })
      }
    })
    // Scheduling overhead: the time a runner's slots spent between builds (not in the local builder), per build,
    // from each runner's first build start to its last build end.
    let idle = 0
    for (const r of farm.runners.values()) {
      const mine = buildSpans.filter((b) => b.runner === r.name)
      if (mine.length === 0) continue
      const first = Math.min(...mine.map((b) => b.from))
      const last = Math.max(...mine.map((b) => b.to))
      idle += (last - first) * jobs - mine.reduce((t, b) => t + b.to - b.from, 0)
    }
    const inBuilder = median(buildSpans.map((b) => b.to - b.from))
    const gaps = handoffGaps(buildSpans, jobs, firstStart)
    const gapTotal = gaps.handoff.reduce((t, g) => t + g, 0) + gaps.filling.reduce((t, g) => t + g, 0)
    console.log(`  slot time between builds: ${(idle / buildSpans.length).toFixed(0)} ms per derivation (each runner's first build start to its last build end); ` +
      `time in the local builder per build: median ${inBuilder} ms for a ${sleep * 1000} ms sleep`)
    console.log(`  scheduling overhead (a slot freed → its next build started, while jobs were queued; plus each slot's first start after the graph's first build): ` +
      `${(gapTotal / buildSpans.length).toFixed(1)} ms per derivation; handoffs median ${median(gaps.handoff)} ms, p90 ${pct(gaps.handoff, 0.9)} ms (${gaps.handoff.length}); ` +
      `first starts median ${median(gaps.filling)} ms; slots idle at the end, no job left: ${(gaps.tail / buildSpans.length).toFixed(0)} ms per derivation`)
    for (const [name, xs] of Object.entries(phases)) console.log(`  per build ${name}: median ${median(xs)} ms, p90 ${pct(xs, 0.9)} ms (${xs.length} builds)`)
    const perRunner = query(`SELECT runner, COUNT(*) FROM farm_builds WHERE status = 'succeeded' AND started_at >= ${started} GROUP BY runner ORDER BY runner`)
    console.log(`  builds per runner: ${perRunner.map(([r, c]) => `${r} ${c}`).join(", ")}`)
    console.log(`  runner peak RSS: ${[...farm.runners.values()].map((r) => `${r.name} ${Math.round(r.peakRssKb / 1024)} MiB`).join(", ")}; load after: ${load()}`)

    if (pgStats) {
      const rows = query(`SELECT calls, round(total_exec_time)::int, regexp_replace(left(query, 110), '\\s+', ' ', 'g') FROM pg_stat_statements ORDER BY calls DESC LIMIT 40`)
      const total = query("SELECT sum(calls), round(sum(total_exec_time))::int FROM pg_stat_statements")[0]
      console.log(`  SQL: ${total?.[0]} statements, ${total?.[1]} ms executing; the most frequent:`)
      for (const [calls, ms, text] of rows) console.log(`    ${calls!.padStart(6)} ${ms!.padStart(6)} ms  ${text}`)
    }
    if (local) {
      const localSalt = `${salt}-local`
      const localStore = farm.clientStore(localSalt)
      const t0 = Date.now()
      const built = await spawnB3(["build", "--store", localStore, "--max-jobs", String(slots), graphModule], { ...env, B3_FARM_SALT: localSalt }).result
      const localWall = Date.now() - t0
      if (built.status !== 0) throw new Error(`local build failed: ${built.stderr}`)
      console.log(`  local b3 build --max-jobs ${slots} of the same graph: ${localWall} ms (ideal ${Math.ceil(n / slots) * sleep * 1000}); farm/local wall ${(wall / localWall).toFixed(2)}; load after: ${load()}`)
    }
  }
} finally {
  if (profileAt >= 0) {
    for (const r of farm.runners.values()) r.child.kill("SIGTERM")
    await Promise.all([...farm.runners.values()].map((r) => r.exited))
  }
  await farm.close()
}
