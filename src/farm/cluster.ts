/**
 * Where the farm meets Effect Cluster: the SQL client for a farm URL (PostgreSQL through
 * `@effect/sql-pg`, or an embedded SQLite file through `node:sqlite`), and the cluster layers for a
 * runner (a member that hosts workflow entities, reachable over TCP) and for a client (submits and
 * polls workflows, hosts nothing). Workflow state, messages and runner membership live in the
 * cluster's own tables in that database.
 */
import { Layer, Option, Redacted } from "effect"
import { ClusterWorkflowEngine, RunnerAddress, type ShardingConfig } from "effect/cluster"
import { NodeClusterSocket } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "effect/sql"
import * as SqliteClient from "./sqlite-client.ts"

export type FarmDialect = "pg" | "sqlite"

export const dialectOf = (url: string): FarmDialect | undefined =>
  /^postgres(ql)?:\/\//.test(url) ? "pg" : /^sqlite:/.test(url) ? "sqlite" : undefined

/** `sqlite:///abs/path`, `sqlite:relative/path` or `sqlite:/abs/path` → the file name. */
const sqliteFile = (url: string) => url.replace(/^sqlite:(\/\/)?/, "")

/** The farm database as an `SqlClient` (and `PgClient` for PostgreSQL). */
export const sqlLayer = (url: string): Layer.Layer<SqlClient.SqlClient, unknown> =>
  dialectOf(url) === "pg"
    ? PgClient.layer({
      url: Redacted.make(url), maxConnections: 8, applicationName: "b3-farm",
      // a session that stalls inside a transaction (its process hung or stopped reading) is ended by the
      // server after a minute, releasing the scheduler's lock it may hold
      startupParameters: { idle_in_transaction_session_timeout: "60000" }
    })
    : SqliteClient.layer({ filename: sqliteFile(url) })

/** Cluster timings: fast failover and short poll intervals (builds are seconds, not days). */
export const shardingConfig = (dialect: FarmDialect): Partial<ShardingConfig.ShardingConfig["Service"]> => ({
  shardsPerGroup: 64,
  entityMessagePollInterval: "1 second",
  entityReplyPollInterval: "50 millis",
  refreshAssignmentsInterval: "1 second",
  shardLockRefreshInterval: "2 seconds",
  shardLockExpiration: "8 seconds",
  runnerHealthCheckInterval: "2 seconds",
  sendRetryInterval: "50 millis",
  entityMaxIdleTime: "30 seconds",
  entityTerminationTimeout: "5 seconds",
  // SQLite has no advisory locks
  ...(dialect === "sqlite" ? { shardLockDisableAdvisory: true } : {})
})

/** A cluster member hosting workflow entities, listening on host:port for other members. */
export const runnerClusterLayer = (url: string, host: string, port: number) => {
  const dialect = dialectOf(url) ?? "pg"
  const sharding = NodeClusterSocket.layer({
    storage: "sql",
    serialization: "ndjson",
    shardingConfig: { ...shardingConfig(dialect), runnerAddress: Option.some(RunnerAddress.make(host, port)) }
  })
  return ClusterWorkflowEngine.layer.pipe(Layer.provideMerge(sharding), Layer.provideMerge(sqlLayer(url)))
}

/** A client of the cluster: starts and polls workflows, runs none. */
export const clientClusterLayer = (url: string) => {
  const dialect = dialectOf(url) ?? "pg"
  const sharding = NodeClusterSocket.layer({ storage: "sql", clientOnly: true, serialization: "ndjson", shardingConfig: shardingConfig(dialect) })
  return ClusterWorkflowEngine.layer.pipe(Layer.provideMerge(sharding), Layer.provideMerge(sqlLayer(url)))
}

/**
 * The shared cache's URI as the farm opens it:
 * - binary caches remember "not in the cache" answers (Nix's narinfo-cache-negative-ttl), but on a
 *   farm other runners fill the cache all the time: `negative-ttl=0`;
 * - NARs are written with zstd unless the URI names a compression: binary caches default to xz,
 *   which runs an `xz` process per NAR each way (~0.1–1 s of CPU apiece on a loaded machine, for
 *   every .drv uploaded, input fetched, output pushed and substituted); zstd runs in-process.
 *   Nix reads both.
 */
export const sharedCacheUri = (uri: string): string => {
  if (!/^(s3|https?|file):/.test(uri)) return uri
  const add = (u: string, param: string, value: string) =>
    new RegExp(`[?&]${param}=`).test(u) ? u : `${u}${u.includes("?") ? "&" : "?"}${param}=${value}`
  return add(add(uri, "negative-ttl", "0"), "compression", "zstd")
}
