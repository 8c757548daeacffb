/**
 * A farm on this machine for the tests: a real PostgreSQL (started here), s3rver as the shared
 * cache, a signing key, and runners as separate `b3 farm runner` processes on 127.0.0.1, each with
 * its own chroot store. Clients are `b3 build --farm` processes with their own stores.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { b3Bin } from "../support/b3.ts"
import { addBusybox } from "../support/busybox.ts"
import { freePort, startPostgresServer, type TestPostgresServer } from "../support/postgres.ts"
import { s3Credentials, startS3Server, type S3TestServer } from "../support/s3-server.ts"

export const graphModule = fileURLToPath(new URL("./graph.ts", import.meta.url))

export interface RunnerProcess {
  readonly name: string
  readonly child: ChildProcess
  readonly store: string
  /** Lines the runner printed (stderr). */
  readonly lines: Array<string>
  /** Resolves with the first line (from now on, or already printed) that matches. */
  readonly waitForLine: (match: RegExp) => Promise<string>
  readonly exited: Promise<number | null>
  /** Peak resident set size (kB) seen in /proc while it ran, sampled on each line it printed. */
  peakRssKb: number
}

export interface TestFarm {
  readonly scratch: string
  readonly pg: TestPostgresServer
  readonly s3: S3TestServer
  readonly url: string
  readonly cacheUri: string
  readonly bucket: string
  readonly publicKey: string
  readonly secretKeyFile: string
  readonly env: NodeJS.ProcessEnv
  readonly busybox: string
  readonly runners: Map<string, RunnerProcess>
  readonly startRunner: (name: string, options?: { maxJobs?: number; features?: string; systems?: string; lease?: number }) => Promise<RunnerProcess>
  /** A client store (a chroot store) with busybox in it. */
  readonly clientStore: (name: string) => string
  readonly close: () => Promise<void>
}

export interface ClientResult {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
}

const readRssKb = (pid: number | undefined): number => {
  if (pid === undefined) return 0
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) : 0
  } catch { return 0 }
}

export const spawnB3 = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) => {
  const child = spawn(b3Bin, args, { env, stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d: Buffer) => { stdout += d.toString() })
  child.stderr!.on("data", (d: Buffer) => { stderr += d.toString() })
  const result = new Promise<ClientResult>((resolve) => child.on("exit", (status) => resolve({ status, stdout, stderr })))
  return { child, result, output: () => ({ stdout, stderr }) }
}

export const startFarm = async (): Promise<TestFarm> => {
  const scratch = mkdtempSync(join(tmpdir(), "b3-farm-"))
  // runners and clients are other processes: they reach it over TCP; each holds a few connections
  const pg = await startPostgresServer({
    tcp: true, maxConnections: 300,
    settings: { shared_buffers: "64MB", ...(process.env.B3_PG_STATS ? { shared_preload_libraries: "pg_stat_statements" } : {}) }
  })
  const s3 = await startS3Server(join(scratch, "s3"))
  const bucket = "farmcache"
  await fetch(`${s3.directUrl()}/${bucket}`, { method: "PUT" })
  const env: NodeJS.ProcessEnv = { ...process.env, ...s3Credentials, B3_QUIET: "0" }
  const keyDir = join(scratch, "keys")
  mkdirSync(keyDir)
  const secretKeyFile = join(keyDir, "farm.sec")
  const publicFile = join(keyDir, "farm.pub")
  const gen = spawnSync(b3Bin, ["key", "generate", "--name", "farm-1", "--secret", secretKeyFile, "--public", publicFile], { env, encoding: "utf8" })
  if (gen.status !== 0) throw new Error(`key generate failed: ${gen.stderr}`)
  const publicKey = readFileSync(publicFile, "utf8").trim()
  const busyboxStore = join(scratch, "busybox-store")
  const busybox = addBusybox(busyboxStore)
  const cacheUri = s3.storeUri(bucket)
  const runners = new Map<string, RunnerProcess>()

  const startRunner: TestFarm["startRunner"] = async (name, options = {}) => {
    const port = await freePort()
    const store = join(scratch, "runners", name)
    mkdirSync(store, { recursive: true })
    const child = spawn(b3Bin, ["farm", "runner", "--farm", pg.tcpUrl, "--cache", cacheUri, "--store", `local?root=${store}`,
      "--listen", `127.0.0.1:${port}`, "--id", name, "--max-jobs", String(options.maxJobs ?? 2), "--secret-key", secretKeyFile,
      "--systems", options.systems ?? "x86_64-linux", "--features", options.features ?? "", "--lease", String(options.lease ?? 6)],
    { env, stdio: ["ignore", "ignore", "pipe"] })
    const lines: Array<string> = []
    const waiters: Array<{ match: RegExp; resolve: (l: string) => void }> = []
    const runner: RunnerProcess = {
      name, child, store, lines, peakRssKb: 0,
      exited: new Promise((resolve) => child.on("exit", (code) => resolve(code))),
      waitForLine: (match) => new Promise((resolve) => {
        const seen = lines.find((l) => match.test(l))
        if (seen) resolve(seen)
        else waiters.push({ match, resolve })
      })
    }
    createInterface({ input: child.stderr! }).on("line", (line) => {
      lines.push(line)
      runner.peakRssKb = Math.max(runner.peakRssKb, readRssKb(child.pid))
      for (const w of waiters.splice(0)) { if (w.match.test(line)) w.resolve(line); else waiters.push(w) }
    })
    runners.set(name, runner)
    await Promise.race([runner.waitForLine(/ ready: /), runner.exited.then((code) => { throw new Error(`runner ${name} exited (${code}):\n${lines.join("\n")}`) })])
    return runner
  }

  const clientStore = (name: string) => {
    const root = join(scratch, "clients", name)
    mkdirSync(root, { recursive: true })
    // the client's store needs busybox (a source of every test derivation): copy it from the scratch store
    const copied = spawnSync(b3Bin, ["copy", "--from", `local?root=${busyboxStore}`, "--to", `local?root=${root}`, "--no-check-sigs", busybox], { env, encoding: "utf8" })
    if (copied.status !== 0) throw new Error(`copying busybox failed: ${copied.stderr}`)
    return `local?root=${root}`
  }

  const close = async () => {
    for (const r of runners.values()) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL")
    await Promise.all([...runners.values()].map((r) => r.exited))
    await s3.close()
    await pg.stop()
    rmSync(scratch, { recursive: true, force: true })
  }

  writeFileSync(join(scratch, "README"), "b3 farm test scratch\n")
  return { scratch, pg, s3, url: pg.tcpUrl, cacheUri, bucket, publicKey, secretKeyFile, env, busybox, runners, startRunner, clientStore, close }
}
