/** `b3 farm status`: the runners, the queue, running and failed builds, read from the farm's tables. */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as Db from "./db.ts"
import { runnerLiveMs } from "./workflow.ts"

export interface FarmStatus {
  readonly runners: ReadonlyArray<{
    readonly id: string
    readonly host: string
    readonly systems: ReadonlyArray<string>
    readonly features: ReadonlyArray<string>
    readonly maxJobs: number
    readonly running: number
    /** up: heartbeat within 30 s; stopped: shut down cleanly; lost: stopped sending heartbeats */
    readonly state: "up" | "stopped" | "lost"
    readonly lastSeen: number
  }>
  readonly queued: number
  /** Jobs waiting for their inputs to be built. */
  readonly waiting: number
  readonly queue: ReadonlyArray<{ readonly drvPath: string; readonly system: string; readonly features: ReadonlyArray<string>; readonly submission: string; readonly since: number }>
  readonly running: ReadonlyArray<{ readonly drvPath: string; readonly runner: string; readonly since: number; readonly attempts: number }>
  readonly failed: ReadonlyArray<{ readonly drvPath: string; readonly runner: string; readonly at: number; readonly message: string }>
  readonly builds: { readonly succeeded: number; readonly failed: number; readonly lost: number; readonly skipped: number; readonly running: number }
}

export const farmStatus = (limit = 50): Effect.Effect<FarmStatus, unknown, SqlClient.SqlClient> => Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* Db.migrate
  const t = Db.now()
  const runners = yield* sql<Db.RunnerRow>`SELECT * FROM farm_runners ORDER BY id`
  const runningBy = yield* sql<{ runner: string; n: number }>`SELECT runner, COUNT(*) AS n FROM farm_jobs WHERE state = 'running' GROUP BY runner`
  const counts = new Map(runningBy.map((r) => [r.runner, Number(r.n)]))
  const [queued] = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM farm_jobs WHERE state = 'queued'`
  const [waiting] = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM farm_jobs WHERE state = 'blocked'`
  const queue = yield* sql<{ drv: string; system: string; features: string; submission: string; queued_at: number }>`SELECT drv, system, features, submission, queued_at FROM farm_jobs WHERE state = 'queued' ORDER BY seq LIMIT ${limit}`
  const running = yield* sql<{ drv: string; runner: string; started_at: number; attempts: number }>`SELECT drv, runner, started_at, attempts FROM farm_jobs WHERE state = 'running' ORDER BY started_at`
  const failed = yield* sql<{ drv: string; runner: string; finished_at: number; message: string | null }>`SELECT drv, runner, finished_at, message FROM farm_builds WHERE status = 'failed' ORDER BY id DESC LIMIT ${limit}`
  const builds = yield* sql<{ status: string; n: number }>`SELECT status, COUNT(*) AS n FROM farm_builds GROUP BY status`
  const buildCount = (status: string) => Number(builds.find((b) => b.status === status)?.n ?? 0)
  return {
    runners: runners.map((r) => ({
      id: r.id, host: r.host, systems: Db.splitList(r.systems), features: Db.splitList(r.features), maxJobs: Number(r.max_jobs),
      running: counts.get(r.id) ?? 0,
      state: r.stopped_at !== null ? "stopped" as const : Number(r.heartbeat_at) > t - runnerLiveMs ? "up" as const : "lost" as const,
      lastSeen: Number(r.heartbeat_at)
    })),
    queued: Number(queued?.n ?? 0),
    waiting: Number(waiting?.n ?? 0),
    queue: queue.map((q) => ({ drvPath: q.drv, system: q.system, features: Db.splitList(q.features), submission: q.submission, since: Number(q.queued_at) })),
    running: running.map((r) => ({ drvPath: r.drv, runner: r.runner, since: Number(r.started_at), attempts: Number(r.attempts) })),
    failed: failed.map((f) => ({ drvPath: f.drv, runner: f.runner, at: Number(f.finished_at), message: f.message ?? "" })),
    builds: { succeeded: buildCount("succeeded"), failed: buildCount("failed"), lost: buildCount("lost"), skipped: buildCount("skipped"), running: buildCount("running") }
  }
})

const ago = (t: number) => `${Math.max(0, Math.round((Date.now() - t) / 1000))}s`

/** The status as text, for people. */
export const formatStatus = (s: FarmStatus): string => {
  const lines: Array<string> = []
  lines.push(`runners (${s.runners.filter((r) => r.state === "up").length} up):`)
  for (const r of s.runners) {
    lines.push(`  ${r.id}  ${r.state}${r.state === "up" ? "" : ` (last seen ${ago(r.lastSeen)} ago)`}  ${r.systems.join(",")}${r.features.length ? ` [${r.features.join(",")}]` : ""}  ${r.running}/${r.maxJobs} jobs`)
  }
  lines.push(`queue: ${s.queued} ready, ${s.waiting} waiting for their inputs`)
  for (const q of s.queue.slice(0, 10)) lines.push(`  ${q.drvPath}  ${q.system}${q.features.length ? ` [${q.features.join(",")}]` : ""}  ${ago(q.since)}`)
  lines.push(`running: ${s.running.length}`)
  for (const r of s.running) lines.push(`  ${r.drvPath}  on ${r.runner}  for ${ago(r.since)}${r.attempts > 1 ? `  (attempt ${r.attempts})` : ""}`)
  lines.push(`failed: ${s.builds.failed}`)
  for (const f of s.failed.slice(0, 10)) lines.push(`  ${f.drvPath}  on ${f.runner}: ${f.message.split("\n")[0]}`)
  lines.push(`builds: ${s.builds.succeeded} succeeded, ${s.builds.failed} failed, ${s.builds.lost} lost, ${s.builds.skipped} skipped (cache had them)`)
  return lines.join("\n")
}
