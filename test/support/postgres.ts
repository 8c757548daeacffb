/**
 * A throwaway PostgreSQL server for tests (Debian's postgresql): initdb into a temp directory,
 * listening only on a unix socket there, as a Scope resource (stopped and removed when the scope
 * closes). Run as the `postgres` user when the tests run as root (PostgreSQL refuses root).
 */
import { Effect } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"

const binDir = ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"].find((d) => existsSync(join(d, "postgres")))

export const hasPostgres = binDir !== undefined

const asPostgres = (command: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  // setpriv execs the command itself, so signals reach postgres directly
  process.getuid?.() === 0 ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--clear-groups", "--", command, ...args]] : [command, [...args]]

export interface TestPostgres {
  /** `postgresql:///DB?host=SOCKETDIR&user=b3` */
  readonly url: (database: string) => string
  /** Creates an empty database and gives its URL. */
  readonly freshDatabase: () => Promise<string>
}

let databases = 0

export const startPostgres = Effect.acquireRelease(
  Effect.promise(async () => {
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
      for (const d of [data, socket]) chownSync(d, uid, gid)
    }
    const [cmd, args] = asPostgres(join(binDir, "initdb"), ["-D", data, "-A", "trust", "-U", "b3", "--no-sync"])
    const init = spawnSync(cmd, args, { encoding: "utf8" })
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`)
    const [pcmd, pargs] = asPostgres(join(binDir, "postgres"), ["-D", data, "-k", socket, "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=50"])
    const child = spawn(pcmd, pargs, { stdio: ["ignore", "ignore", "pipe"] })
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stderr! }).on("line", (line) => { if (/ready to accept connections/.test(line)) resolve() })
      child.once("exit", (code) => reject(new Error(`postgres exited with ${code}`)))
    })
    const url = (database: string) => `postgresql:///${database}?host=${encodeURIComponent(socket)}&user=b3`
    const freshDatabase = async () => {
      const pg = await import("pg" as string) as { default: { Client: new (o: { connectionString: string }) => { connect(): Promise<void>; query(q: string): Promise<unknown>; end(): Promise<void> } } }
      const client = new pg.default.Client({ connectionString: url("postgres") })
      await client.connect()
      const name = `b3_${process.pid}_${++databases}`
      try { await client.query(`create database ${name}`) } finally { await client.end() }
      return url(name)
    }
    return { dir, child, postgres: { url, freshDatabase } as TestPostgres }
  }),
  ({ dir, child }) => Effect.promise(() => new Promise<void>((resolve) => {
    const done = () => { rmSync(dir, { recursive: true, force: true }); resolve() }
    if (child.exitCode !== null) return done()
    child.once("exit", done)
    child.kill("SIGINT") // fast shutdown
  }))
).pipe(Effect.map(({ postgres }) => postgres))
