/**
 * The farm's own tables, beside Effect Cluster's (`cluster_*`: runners, shard locks, messages and
 * replies, which hold the workflows' durable state): what the runners offer, the build queue, the
 * build records, per-derivation results and waiters, events and log lines for submitters.
 * Everything here is plain SQL that PostgreSQL and SQLite both run; times are epoch milliseconds
 * from the writer's clock.
 */
import { Effect, Schedule } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

export type Sql = SqlClient.SqlClient

const ddl = (sql: Sql) => {
  const serial = sql.onDialectOrElse({ pg: () => "BIGSERIAL PRIMARY KEY", orElse: () => "INTEGER PRIMARY KEY AUTOINCREMENT" })
  const time = "BIGINT"
  return [
    `CREATE TABLE IF NOT EXISTS farm_config (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS farm_runners (id TEXT PRIMARY KEY, host TEXT NOT NULL, systems TEXT NOT NULL, features TEXT NOT NULL,
      max_jobs INTEGER NOT NULL, pid INTEGER NOT NULL, started_at ${time} NOT NULL, heartbeat_at ${time} NOT NULL, stopped_at ${time})`,
    `CREATE TABLE IF NOT EXISTS farm_submissions (id TEXT PRIMARY KEY, roots TEXT NOT NULL, created_at ${time} NOT NULL)`,
    // one row per derivation the farm was asked for: pending until its result is known (done or failed);
    // `recorded` once its workflow has recorded it; `execution` is the workflow's execution id
    `CREATE TABLE IF NOT EXISTS farm_derivations (drv TEXT PRIMARY KEY, epoch INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, result TEXT,
      recorded INTEGER NOT NULL DEFAULT 0, execution TEXT, submission TEXT, updated_at ${time} NOT NULL)`,
    // the input derivations of each derivation with a job
    `CREATE TABLE IF NOT EXISTS farm_deps (drv TEXT NOT NULL, dep TEXT NOT NULL, PRIMARY KEY (drv, dep))`,
    `CREATE INDEX IF NOT EXISTS farm_deps_dep ON farm_deps (dep)`,
    // the build queue: blocked (inputs not built yet) → queued → running → done | failed; `result` is the exit the workflow is woken with
    `CREATE TABLE IF NOT EXISTS farm_jobs (seq ${serial}, drv TEXT NOT NULL, epoch INTEGER NOT NULL, system TEXT NOT NULL, features TEXT NOT NULL,
      submission TEXT NOT NULL, token TEXT NOT NULL, execution TEXT NOT NULL, state TEXT NOT NULL, runner TEXT, lease_until ${time},
      attempts INTEGER NOT NULL DEFAULT 0, result TEXT, queued_at ${time} NOT NULL, started_at ${time}, finished_at ${time}, UNIQUE (drv, epoch))`,
    `CREATE INDEX IF NOT EXISTS farm_jobs_state ON farm_jobs (state, seq)`,
    `CREATE TABLE IF NOT EXISTS farm_builds (id ${serial}, drv TEXT NOT NULL, runner TEXT NOT NULL, status TEXT NOT NULL,
      started_at ${time} NOT NULL, finished_at ${time}, message TEXT)`,
    `CREATE INDEX IF NOT EXISTS farm_builds_drv ON farm_builds (drv)`,
    `CREATE TABLE IF NOT EXISTS farm_events (id ${serial}, at ${time} NOT NULL, drv TEXT NOT NULL, type TEXT NOT NULL, runner TEXT, message TEXT)`,
    `CREATE TABLE IF NOT EXISTS farm_logs (id ${serial}, drv TEXT NOT NULL, chunk TEXT NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS farm_logs_drv ON farm_logs (drv, id)`
  ]
}

/** A schedule for retrying statements that hit a transient error (lost connection, lock timeout). */
export const sqlRetry = Schedule.min([Schedule.exponential("50 millis", 1.5), Schedule.spaced("2 seconds")])

/** Creates the farm's tables (idempotent; concurrent creators are retried). */
export const migrate: Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const statement of ddl(sql)) {
    yield* sql.unsafe(statement).pipe(Effect.retry({ times: 5, schedule: Schedule.spaced("100 millis") }))
  }
})

export const now = () => Date.now()

/**
 * A transaction that, once begun, runs to its commit or rollback even if the fiber is interrupted
 * (a runner stopping, a workflow's entity moving): an interruption between its statements left the
 * connection idle in the transaction, holding its locks (the scheduler's lock stalled every runner).
 */
export const transaction = <A, E, R>(sql: Sql, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError.SqlError, R> =>
  Effect.uninterruptible(sql.withTransaction(effect))

/** Runs `f` with the SqlClient in context. */
export const withSql = <A, E, R>(f: (sql: Sql) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R | SqlClient.SqlClient> =>
  Effect.gen(function*() { return yield* f(yield* SqlClient.SqlClient) })

export const setConfig = (key: string, value: string) => withSql((sql) =>
  sql`INSERT INTO farm_config (key, value) VALUES (${key}, ${value}) ON CONFLICT (key) DO UPDATE SET value = ${value}`)

export const getConfig = (key: string) => withSql((sql) =>
  Effect.map(sql<{ value: string }>`SELECT value FROM farm_config WHERE key = ${key}`, (rows) => rows[0]?.value))

export const event = (drv: string, type: string, runner?: string, message?: string) =>
  withSql((sql) =>
    sql`INSERT INTO farm_events (at, drv, type, runner, message) VALUES (${now()}, ${drv}, ${type}, ${runner ?? null}, ${message ?? null})`)

export interface RunnerRow {
  readonly id: string
  readonly host: string
  readonly systems: string
  readonly features: string
  readonly max_jobs: number
  readonly pid: number
  readonly started_at: number
  readonly heartbeat_at: number
  readonly stopped_at: number | null
}

/** Runners that have sent a heartbeat within `withinMs` and have not stopped. */
export const liveRunners = (withinMs: number) => withSql((sql) =>
  sql<RunnerRow>`SELECT * FROM farm_runners WHERE stopped_at IS NULL AND heartbeat_at > ${now() - withinMs}`)

export interface JobRow {
  readonly seq: number
  readonly drv: string
  readonly epoch: number
  readonly system: string
  readonly features: string
  readonly submission: string
  readonly token: string
  readonly state: string
  readonly runner: string | null
  readonly lease_until: number | null
  readonly attempts: number
}

/** Whether a runner offering `systems` and `features` can take a job. */
export const canRun = (job: { readonly system: string; readonly features: string }, systems: ReadonlySet<string>, features: ReadonlySet<string>) =>
  systems.has(job.system) && splitList(job.features).every((f) => features.has(f))

export const splitList = (list: string): Array<string> => list.split(",").filter((s) => s.length > 0)
export const joinList = (items: Iterable<string>): string => [...new Set(items)].sort().join(",")
