/**
 * A throwaway PostgreSQL server for tests (Debian's postgresql): a fresh cluster made with `initdb`
 * in a temporary directory, listening on a unix socket there and, when asked, on 127.0.0.1 (a free
 * port, for clients in other processes that take a `postgres://host:port` URL). Run as the
 * `postgres` user when the tests run as root (PostgreSQL refuses root).
 *
 * Two ways to hold one:
 * - `startPostgres`: a Scope resource (stopped and removed when the scope closes), with `url(db)`
 *   and `freshDatabase()` (the chunk store's index tests);
 * - `startPostgresServer({ tcp: true })`: a promise of a server with `url` (TCP, the `postgres`
 *   database) and `stop()` (the farm tests, which keep one server for a whole file).
 */
import { Effect, type Scope } from "effect"
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"

const binDir = ((): string | undefined => {
  const base = "/usr/lib/postgresql"
  if (!existsSync(base)) return undefined
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, "bin", "postgres"))).sort((a, b) => Number(b) - Number(a))
  return versions[0] === undefined ? undefined : join(base, versions[0], "bin")
})()

export const hasPostgres = binDir !== undefined

/** A PostgreSQL client program (psql, pg_dump…) of the installed server's version. */
export const postgresBin = (name: string): string => binDir ? join(binDir, name) : name

const asPostgres = (command: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  // setpriv execs the command itself, so signals reach postgres directly
  process.getuid?.() === 0 ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--clear-groups", "--", command, ...args]] : [command, [...args]]

/** A TCP port nothing listens on now, on 127.0.0.1. */
export const freePort = (): Promise<number> => new Promise((resolve, reject) => {
  const server = createServer()
  server.once("error", reject)
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    server.close(() => typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")))
  })
})

export interface TestPostgres {
  /** `postgresql:///DB?host=SOCKETDIR&user=b3` */
  readonly url: (database: string) => string
  /** Creates an empty database and gives its URL. */
  readonly freshDatabase: () => Promise<string>
}

export interface TestPostgresServer extends TestPostgres {
  /** `postgres://b3@127.0.0.1:PORT/postgres` with `tcp`, else the socket URL of the `postgres` database. */
  readonly tcpUrl: string
  readonly port: number | undefined
  readonly dir: string
  /** Fast shutdown; removes the directory. */
  readonly stop: () => Promise<void>
}

export interface PostgresOptions {
  /** Listen on 127.0.0.1 too (a free port). */
  readonly tcp?: boolean
  readonly maxConnections?: number
  /** Extra `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string>>
}

let databases = 0

export const startPostgresServer = async (options: PostgresOptions = {}): Promise<TestPostgresServer> => {
  if (!binDir) throw new Error("PostgreSQL is not installed (apt-get install -y postgresql)")
  const dir = mkdtempSync(join(tmpdir(), "b3-pg-"))
  chmodSync(dir, 0o755)
  const data = join(dir, "data")
  const socket = join(dir, "socket")
  mkdirSync(data)
  mkdirSync(socket)
  if (process.getuid?.() === 0) {
    const uid = Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim())
    const gid = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim())
    if (!Number.isInteger(uid) || uid === 0) throw new Error("running as root needs a 'postgres' user to run the server as")
    for (const d of [data, socket]) chownSync(d, uid, gid)
  }
  const [cmd, args] = asPostgres(join(binDir, "initdb"), ["-D", data, "-A", "trust", "-U", "b3", "-E", "UTF8", "--no-sync"])
  const init = spawnSync(cmd, args, { encoding: "utf8", env: { ...process.env, LC_ALL: "C" } })
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`)
  const port = options.tcp ? await freePort() : undefined
  const settings: Record<string, string> = {
    listen_addresses: port === undefined ? "" : "127.0.0.1",
    fsync: "off", synchronous_commit: "off", full_page_writes: "off",
    max_connections: String(options.maxConnections ?? 50),
    ...options.settings
  }
  const [pcmd, pargs] = asPostgres(join(binDir, "postgres"), ["-D", data, "-k", socket, ...(port === undefined ? [] : ["-p", String(port)]),
    ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])])
  const child: ChildProcess = spawn(pcmd, pargs, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, LC_ALL: "C" } })
  let log = ""
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`postgres exited (${code}) before it was ready:\n${log}`))
    child.once("exit", onExit)
    createInterface({ input: child.stderr! }).on("line", (line) => {
      log += `${line}\n`
      if (/ready to accept connections/.test(line)) {
        child.off("exit", onExit)
        resolve()
      }
    })
  })
  // the socket file is named after the port (5432 when not listening on TCP)
  const url = (database: string) => `postgresql:///${database}?host=${encodeURIComponent(socket)}&user=b3${port === undefined ? "" : `&port=${port}`}`
  const freshDatabase = async () => {
    const pg = await import("pg" as string) as { default: { Client: new (o: { connectionString: string }) => { connect(): Promise<void>; query(q: string): Promise<unknown>; end(): Promise<void> } } }
    const client = new pg.default.Client({ connectionString: url("postgres") })
    await client.connect()
    const name = `b3_${process.pid}_${++databases}`
    try { await client.query(`create database ${name}`) } finally { await client.end() }
    return url(name)
  }
  const stop = () => new Promise<void>((resolve) => {
    const done = () => { rmSync(dir, { recursive: true, force: true }); resolve() }
    if (child.exitCode !== null || child.signalCode !== null) return done()
    child.once("exit", done)
    child.kill("SIGINT") // fast shutdown
  })
  const tcpUrl = port === undefined ? url("postgres") : `postgres://b3@127.0.0.1:${port}/postgres`
  return { url, freshDatabase, tcpUrl, port, dir, stop }
}

/** A server as a Scope resource (socket only). */
export const startPostgres: Effect.Effect<TestPostgres, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => startPostgresServer()),
  (server) => Effect.promise(() => server.stop())
).pipe(Effect.map((server): TestPostgres => ({ url: server.url, freshDatabase: server.freshDatabase })))
