/**
 * An `effect/sql` client over Node's built-in SQLite (`node:sqlite`), so the farm's embedded mode
 * needs nothing installed: one connection per process, shared through a semaphore (Effect's own
 * SQLite acquirers), WAL journal and a busy timeout so that several processes on one machine can
 * share the database file.
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite"
import { Context, Effect, Layer, Scope, Semaphore, Stream } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient, SqlConnection, SqlError, Statement } from "effect/sql"

const toSqlError = (cause: unknown, operation: string) =>
  new SqlError.SqlError({ reason: SqlError.classifySqliteError(cause, { message: `SQLite: ${operation} failed`, operation }) })

const bind = (params: ReadonlyArray<unknown>): Array<SQLInputValue> => params.map((p) => {
  if (typeof p === "boolean") return p ? 1 : 0
  if (p instanceof Date) return p.toISOString()
  if (p === undefined) return null
  return p as SQLInputValue
})

export interface SqliteConfig {
  readonly filename: string
  /** How long a statement waits for another process's write lock (default 10 s). */
  readonly busyTimeoutMs?: number
}

export const make = (config: SqliteConfig): Effect.Effect<SqlClient.SqlClient, SqlError.SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(
      Effect.try({ try: () => new DatabaseSync(config.filename), catch: (e) => toSqlError(e, "open") }),
      (db) => Effect.sync(() => { try { db.close() } catch { /* already closed */ } }))
    yield* Effect.try({
      try: () => {
        db.exec(`PRAGMA busy_timeout = ${config.busyTimeoutMs ?? 10_000}`)
        db.exec("PRAGMA journal_mode = WAL")
        db.exec("PRAGMA synchronous = NORMAL")
      },
      catch: (e) => toSqlError(e, "configure")
    })
    const run = (sql: string, params: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<any>, SqlError.SqlError> =>
      Effect.try({
        try: () => {
          const statement = db.prepare(sql)
          return statement.columns().length > 0 ? statement.all(...bind(params)) : (statement.run(...bind(params)), [])
        },
        catch: (e) => toSqlError(e, "execute")
      })
    const values = (sql: string, params: ReadonlyArray<unknown>) => Effect.try({
      try: () => {
        const statement = db.prepare(sql)
        statement.setReturnArrays(true)
        return statement.columns().length > 0 ? statement.all(...bind(params)) as unknown as ReadonlyArray<ReadonlyArray<unknown>> : (statement.run(...bind(params)), [])
      },
      catch: (e) => toSqlError(e, "execute")
    })
    const connection: SqlConnection.Connection = {
      execute: (sql, params, transformRows) => Effect.map(run(sql, params), (rows) => transformRows ? transformRows(rows) : rows),
      executeRaw: (sql, params) => run(sql, params),
      executeStream: (sql, params, transformRows) =>
        Stream.fromIterableEffect(Effect.map(run(sql, params), (rows) => transformRows ? transformRows(rows) : rows)),
      executeValues: values,
      executeValuesUnprepared: values,
      executeUnprepared: (sql, params, transformRows) => Effect.map(run(sql, params), (rows) => transformRows ? transformRows(rows) : rows)
    }
    const semaphore = yield* Semaphore.make(1)
    const acquirers = SqlClient.makeSqliteAcquirers({
      connection: Effect.succeed(connection),
      semaphore,
      isTransaction: () => db.isTransaction
    })
    return yield* SqlClient.make({
      ...acquirers,
      compiler: Statement.makeCompilerSqlite(),
      driver: "sqlite-node",
      spanAttributes: [["db.system.name", "sqlite"]],
      beginTransaction: "BEGIN IMMEDIATE"
    })
  })

export const layer = (config: SqliteConfig): Layer.Layer<SqlClient.SqlClient, SqlError.SqlError> =>
  Layer.effectContext(Effect.map(make(config), (client) => Context.make(SqlClient.SqlClient, client))).pipe(
    Layer.provide(Reactivity.layer))
