/**
 * The chunk index's database, SQLite (node:sqlite, one file) or PostgreSQL (the `pg` client, for
 * several writers sharing a store), behind one small interface: queries with `?` placeholders,
 * transactions that either commit whole or leave nothing. The SQL the index speaks is common to
 * both; `dialect` rewrites the few words that differ.
 */
import { Effect, type Scope, Semaphore } from "effect"
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite"
import { StoreIoError } from "../../services/store-errors.ts"
import { importModule } from "../../io/import-module.ts"

export type SqlValue = string | number | Uint8Array | null

export interface Sql {
  readonly all: <T>(sql: string, params?: ReadonlyArray<SqlValue>) => Effect.Effect<ReadonlyArray<T>, StoreIoError>
  readonly run: (sql: string, params?: ReadonlyArray<SqlValue>) => Effect.Effect<void, StoreIoError>
}

export interface Db extends Sql {
  readonly dialect: "sqlite" | "postgres"
  /** Runs `body` in one transaction (serialisable writes); retried where the database asks for it (PostgreSQL deadlocks). */
  readonly transaction: <A, E>(body: (tx: Sql) => Effect.Effect<A, E>) => Effect.Effect<A, E | StoreIoError>
  /** Creates the tables (statements separated by `;`), in the dialect. */
  readonly migrate: (schema: string) => Effect.Effect<void, StoreIoError>
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** SQLite in one file: WAL, a busy timeout for other processes, transactions one at a time here. */
export const openSqlite = (uri: string, file: string): Effect.Effect<Db, StoreIoError, Scope.Scope> => Effect.gen(function*() {
  const failure = (operation: string) => (e: unknown) => new StoreIoError({ store: uri, operation, reason: message(e) })
  const db: DatabaseSync = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        const db = new DatabaseSync(file, { timeout: 60_000 })
        db.exec("pragma journal_mode = wal")
        db.exec("pragma synchronous = normal")
        // checkpoints every 32 MiB of WAL instead of 4: a 1 GiB ingest's seals write ~1,700 pages
        // each, so with the default every commit ran a checkpoint (and its fsync) on the ingest's
        // thread (42 fsyncs per GiB, 9 with this; 3 of 3 A/B pairs faster, main thread -3 to -10%)
        db.exec("pragma wal_autocheckpoint = 8192")
        return db
      },
      catch: failure(`open the index ${file}`)
    }),
    (db) => Effect.sync(() => { try { db.close() } catch { /* already closed */ } }))
  const statements = new Map<string, StatementSync>()
  const prepare = (sql: string) => {
    let s = statements.get(sql)
    if (!s) { s = db.prepare(sql); statements.set(sql, s) }
    return s
  }
  const sql: Sql = {
    all: <T>(text: string, params: ReadonlyArray<SqlValue> = []) =>
      Effect.try({ try: () => prepare(text).all(...(params as Array<SQLInputValue>)) as unknown as ReadonlyArray<T>, catch: failure("query the index") }),
    run: (text, params = []) =>
      Effect.try({ try: () => { prepare(text).run(...(params as Array<SQLInputValue>)) }, catch: failure("update the index") })
  }
  const lock = yield* Semaphore.make(1)
  return {
    dialect: "sqlite",
    ...sql,
    transaction: (body) => lock.withPermits(1)(Effect.uninterruptibleMask((restore) => Effect.gen(function*() {
      yield* Effect.try({ try: () => db.exec("begin immediate"), catch: failure("begin a transaction") })
      const exit = yield* Effect.exit(restore(body(sql)))
      if (exit._tag === "Success") {
        yield* Effect.try({ try: () => db.exec("commit"), catch: failure("commit") }).pipe(
          Effect.tapError(() => Effect.sync(() => { try { db.exec("rollback") } catch { /* not in a transaction */ } })))
        return exit.value
      }
      try { db.exec("rollback") } catch { /* not in a transaction */ }
      return yield* exit
    }))),
    migrate: (schema) => Effect.try({ try: () => db.exec(schema), catch: failure("create the index tables") })
  }
})

interface PgClient {
  query(text: string, values?: ReadonlyArray<unknown>): Promise<{ rows: Array<Record<string, unknown>> }>
  release(error?: Error | boolean): void
}
interface PgPool {
  query(text: string, values?: ReadonlyArray<unknown>): Promise<{ rows: Array<Record<string, unknown>> }>
  connect(): Promise<PgClient>
  end(): Promise<void>
  on(event: "error", listener: (e: Error) => void): void
}
interface PgModule {
  readonly Pool: new (config: Record<string, unknown>) => PgPool
  readonly types: { setTypeParser(oid: number, parse: (value: string) => unknown): void }
}

/** `?` placeholders as PostgreSQL's `$1, $2, …` (the index's SQL has no `?` inside literals). */
const numbered = (text: string) => {
  let n = 0
  return text.replace(/\?/g, () => `$${++n}`)
}

const pgParams = (params: ReadonlyArray<SqlValue>) =>
  params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p.buffer, p.byteOffset, p.length) : p))

/** Rows as SQLite gives them: BYTEA as Uint8Array, BIGINT and NUMERIC (sums) as numbers. */
const normaliseRow = (row: Record<string, unknown>) => {
  for (const key of Object.keys(row)) {
    const v = row[key]
    if (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v) && (key.startsWith("n_") || key === "size" || key === "live" || key === "rows_bytes" || key === "off" || key === "started" || key === "dead_since" || key === "nar_size" || key === "created" || key === "registered" || key === "heartbeat")) row[key] = Number(v)
  }
  return row
}

/** PostgreSQL through a connection pool (`pg`, loaded when such an index is opened). */
export const openPostgres = (uri: string, connectionString: string): Effect.Effect<Db, StoreIoError, Scope.Scope> => Effect.gen(function*() {
  const failure = (operation: string) => (e: unknown) => new StoreIoError({ store: uri, operation, reason: message(e) })
  const pg = yield* Effect.tryPromise({ try: () => importModule<PgModule & { default?: PgModule }>("pg"), catch: failure("load the PostgreSQL client (npm package pg)") })
  const mod = pg.default ?? pg
  const pool = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new mod.Pool({ connectionString, max: 4 })
      pool.on("error", () => { /* an idle client lost its connection: the next query reconnects */ })
      return pool
    }),
    (pool) => Effect.promise(() => pool.end().catch(() => undefined)))
  const on = (client: { query: PgPool["query"] }): Sql => ({
    all: <T>(text: string, params: ReadonlyArray<SqlValue> = []) => Effect.tryPromise({
      try: async () => (await client.query(numbered(text), pgParams(params))).rows.map(normaliseRow) as unknown as ReadonlyArray<T>,
      catch: failure("query the index")
    }),
    run: (text, params = []) => Effect.tryPromise({ try: async () => { await client.query(numbered(text), pgParams(params)) }, catch: failure("update the index") })
  })
  const retryable = (e: unknown) => typeof e === "object" && e !== null && ["40001", "40P01"].includes((e as { code?: string }).code ?? "")
  const attempt = <A, E>(body: (tx: Sql) => Effect.Effect<A, E>): Effect.Effect<A, E | StoreIoError | { readonly retry: true }> =>
    Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => pool.connect(), catch: failure("connect to the index") }),
      (client) => Effect.gen(function*() {
        let retry = false
        const tx: Sql = {
          all: <T>(text: string, params: ReadonlyArray<SqlValue> = []) => Effect.tryPromise({
            try: async () => (await client.query(numbered(text), pgParams(params))).rows.map(normaliseRow) as unknown as ReadonlyArray<T>,
            catch: (e) => { if (retryable(e)) retry = true; return failure("query the index")(e) }
          }),
          run: (text, params = []) => Effect.tryPromise({
            try: async () => { await client.query(numbered(text), pgParams(params)) },
            catch: (e) => { if (retryable(e)) retry = true; return failure("update the index")(e) }
          })
        }
        yield* tx.run("begin")
        const exit = yield* Effect.exit(body(tx))
        if (exit._tag === "Success") {
          const committed = yield* Effect.exit(tx.run("commit"))
          if (committed._tag === "Success") return exit.value
          yield* Effect.ignore(tx.run("rollback"))
          if (retry) return yield* Effect.fail({ retry: true } as const)
          return yield* Effect.failCause(committed.cause)
        }
        yield* Effect.ignore(tx.run("rollback"))
        if (retry) return yield* Effect.fail({ retry: true } as const)
        return yield* exit
      }),
      (client) => Effect.sync(() => client.release()))
  const transaction = <A, E>(body: (tx: Sql) => Effect.Effect<A, E>): Effect.Effect<A, E | StoreIoError> => {
    const loop = (n: number): Effect.Effect<A, E | StoreIoError> => Effect.catch(attempt(body), (e) =>
      typeof e === "object" && e !== null && "retry" in e
        ? (n < 8 ? Effect.andThen(Effect.sleep(5 * 2 ** n), loop(n + 1)) : Effect.fail(new StoreIoError({ store: uri, operation: "commit", reason: "gave up after repeated conflicts" })))
        : Effect.fail(e as E | StoreIoError))
    return loop(0)
  }
  return {
    dialect: "postgres",
    ...on(pool),
    transaction,
    migrate: (schema) => Effect.tryPromise({
      try: async () => {
        const client = await pool.connect()
        try {
          // one migration at a time across writers
          await client.query("select pg_advisory_lock(7253830)")
          try { await client.query(schema.replace(/\bBLOB\b/g, "BYTEA").replace(/\bWITHOUT ROWID\b/g, "")) } finally { await client.query("select pg_advisory_unlock(7253830)") }
        } finally { client.release() }
      },
      catch: failure("create the index tables")
    })
  }
})
