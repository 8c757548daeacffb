/**
 * bench/daemon, in one run: `b3 daemon` against Nix 2.8's `nix-daemon`, each on a private socket
 * over a fresh chroot store (same location, same settings), with Nix's own client:
 *  - `nix copy --to unix://…` of 1,000 small paths, and of one 1 GiB path (time of the client; best of 3,
 *    the two daemons' runs alternating); the 1,000 small paths also to a daemon in use, one that has
 *    just taken a copy of 200 other small paths (untimed): b3's JavaScript is then compiled and
 *    warm, as in a daemon that has served clients before (nix-daemon forks per connection either way);
 *  - QueryValidPaths of 10,000 paths (1,000 of them valid), one request on one connection, sent by the same
 *    raw client to both daemons (best of 5);
 *  - peak RSS of each daemon over the whole case (its process tree: nix-daemon forks per client);
 *  - the 1 GiB copy once more with b3 not flushing what it writes (B3_BENCH_NO_FSYNC=1, measurement
 *    only: Nix 2.8 does not fsync store contents), which shows what durability costs b3 there.
 *   npm run bench:daemon [-- --quick]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { Wire, Worker } from "../../src/core/wire/index.ts"
import { encode } from "../../src/core/wire/encoder.ts"
import { readableChunkSource, WireReader } from "../../src/io/wire-io.ts"
import { bigFile } from "../support/inputs.ts"
import { nixEnv, printTable, runOrThrow, type Row } from "../support/measure.ts"

const quick = process.argv.includes("--quick")
const bigMiB = quick ? 64 : 1024
const smallCount = quick ? 200 : 1000
const queryCount = 10_000
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
const work = mkdtempSync(join(tmpdir(), "b3-bench-daemon-"))
const run = runOrThrow

interface Daemon { readonly child: ChildProcess; readonly socket: string; readonly rssFile: string }

/** Starts a daemon under GNU time (which reports the peak RSS of its whole tree when it exits). */
const startDaemon = async (kind: "b3" | "nix", root: string, socket: string, b3Env: Record<string, string> = {}): Promise<Daemon> => {
  const rssFile = `${socket}.rss`
  const command = kind === "b3"
    ? [b3, "--quiet", "daemon", "--store", `local?root=${root}`, "--socket", socket, "--trust", "all"]
    : ["nix-daemon", "--store", root]
  const child = spawn("/usr/bin/time", ["-f", "%M", "-o", rssFile, ...command], {
    env: { ...nixEnv, NIX_DAEMON_SOCKET_PATH: socket, ...(kind === "b3" ? b3Env : {}) }, stdio: ["ignore", "ignore", "ignore"]
  })
  // ready when the socket accepts a connection
  for (let i = 0; i < 3000; i++) {
    if (existsSync(socket) && await new Promise<boolean>((resolve) => {
      const s = connect(socket)
      s.once("connect", () => { s.destroy(); resolve(true) })
      s.once("error", () => resolve(false))
    })) {
      // a daemon in use has served clients before: one untimed `nix store ping` each (b3's first connection
      // also runs code for the first time; nix-daemon forks per connection either way)
      // (a connection can be reset while a loaded machine starts the daemon: a few tries)
      let ping = spawnSync("nix", ["store", "ping", "--store", `unix://${socket}`], { env: nixEnv, encoding: "utf8" })
      for (let attempt = 1; attempt < 5 && ping.status !== 0; attempt++) {
        await new Promise((r) => setTimeout(r, 100))
        ping = spawnSync("nix", ["store", "ping", "--store", `unix://${socket}`], { env: nixEnv, encoding: "utf8" })
      }
      if (ping.status !== 0) throw new Error(`nix store ping of the ${kind} daemon failed: ${ping.stderr}`)
      return { child, socket, rssFile }
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`${kind} daemon did not start`)
}

/** Stops a daemon; its peak RSS in MiB. */
const stopDaemon = (d: Daemon): Promise<number> => new Promise((resolve) => {
  d.child.once("exit", () => resolve(Number(readFileSync(d.rssFile, "utf8").trim().split(/\s+/).pop()) / 1024))
  // time(1) passes the signal on to the daemon
  spawnSync("pkill", ["-TERM", "-P", String(d.child.pid)])
})

const timed = (args: ReadonlyArray<string>): number => {
  const started = process.hrtime.bigint()
  const r = spawnSync(args[0]!, args.slice(1), { env: nixEnv, stdio: ["ignore", "ignore", "pipe"], maxBuffer: 1 << 26 })
  if (r.status !== 0) throw new Error(`${args.join(" ")} failed: ${r.stderr}`)
  return Number(process.hrtime.bigint() - started) / 1e9
}

/** One QueryValidPaths of `paths` on a fresh connection, after the handshake; seconds. */
const queryValidPaths = async (socket: string, paths: ReadonlyArray<string>): Promise<{ seconds: number; valid: number }> => {
  const s = connect(socket)
  await new Promise<void>((resolve, reject) => { s.once("connect", () => resolve()); s.once("error", reject) })
  const reader = new WireReader(readableChunkSource(s))
  const runD = <A>(d: Wire.Decoder<A>) => Effect.runPromise(reader.run(d))
  const stderr = async () => { while ((await runD(Worker.stderrMessage(34)))._tag !== "Last") { /* log */ } }
  s.write(encode((w) => w.u64(Worker.WORKER_MAGIC_1)))
  await runD(Wire.u64()); await runD(Wire.u64())
  s.write(encode((w) => w.u64(Worker.PROTOCOL_VERSION).u64(0).u64(0)))
  await runD(Wire.string("version"))
  await stderr()
  const request = encode((w) => w.u64(Worker.Op.QueryValidPaths).strings(paths).bool(false))
  const started = process.hrtime.bigint()
  s.write(request)
  await stderr()
  const valid = (await runD(Worker.storePathStrings())).length
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  s.destroy()
  return { seconds, valid }
}

try {
  // The source: a chroot store with the paths to copy, made by Nix.
  const source = join(work, "source")
  const smallDir = join(work, "small")
  mkdirSync(smallDir)
  for (let i = 0; i < smallCount; i++) writeFileSync(join(smallDir, `s${i}`), `small path ${i}\n`.repeat(1 + (i % 50)))
  const small = run("nix-store", ["--store", source, "--add", ...readdirSync(smallDir).map((f) => join(smallDir, f))]).split("\n")
  const otherDir = join(work, "other")
  mkdirSync(otherDir)
  for (let i = 0; i < 200; i++) writeFileSync(join(otherDir, `o${i}`), `another small path ${i}\n`.repeat(1 + (i % 50)))
  const other = run("nix-store", ["--store", source, "--add", ...readdirSync(otherDir).map((f) => join(otherDir, f))]).split("\n")
  const big = run("nix-store", ["--store", source, "--add", bigFile(join(work, "big"), bigMiB)])
  rmSync(join(work, "big"))

  const rows: Array<Row> = []
  const caseOf = async (name: string, body: (d: Daemon) => Promise<number>, b3Env: Record<string, string> = {}) => {
    const result: Record<string, { seconds: number; peakRssMiB: number }> = { nix: { seconds: Infinity, peakRssMiB: 0 }, b3: { seconds: Infinity, peakRssMiB: 0 } }
    // runs alternate (nix, b3, nix, b3, …): the file system's speed here drifts from minute to minute
    for (let i = 0; i < (quick ? 1 : 3); i++) {
      for (const kind of ["nix", "b3"] as const) {
        const root = join(work, `${kind}-${rows.length}-${i}`)
        const d = await startDaemon(kind, root, join(work, `${kind}-${rows.length}-${i}.sock`), b3Env)
        const r = result[kind]!
        try {
          r.seconds = Math.min(r.seconds, await body(d))
        } finally {
          r.peakRssMiB = Math.max(r.peakRssMiB, await stopDaemon(d))
          spawnSync("chmod", ["-R", "u+w", root])
          rmSync(root, { recursive: true, force: true })
        }
      }
    }
    rows.push({ case: name, b3: result["b3"]!, nix: result["nix"]! })
  }

  const copyTo = (paths: ReadonlyArray<string>) => (d: Daemon) =>
    Promise.resolve(timed(["nix", "copy", "--no-check-sigs", "--from", source, "--to", `unix://${d.socket}`, ...paths]))

  await caseOf(`nix copy --to: ${smallCount} small paths`, copyTo(small))
  await caseOf(`nix copy --to: ${smallCount} small paths, daemon in use (200 others copied first, untimed)`, (d) => {
    timed(["nix", "copy", "--no-check-sigs", "--from", source, "--to", `unix://${d.socket}`, ...other])
    return copyTo(small)(d)
  })
  await caseOf(`nix copy --to: one ${bigMiB} MiB path`, copyTo([big]))
  await caseOf(`nix copy --to: one ${bigMiB} MiB path, b3 without fsync (measurement only)`, copyTo([big]), { B3_BENCH_NO_FSYNC: "1" })
  await caseOf(`QueryValidPaths of ${queryCount} paths (${small.length} valid)`, async (d) => {
    timed(["nix", "copy", "--no-check-sigs", "--from", source, "--to", `unix://${d.socket}`, ...small])
    const paths = [...small]
    for (let i = paths.length; i < queryCount; i++) paths.push(`/nix/store/${(i.toString(32) + "0".repeat(32)).slice(0, 32).replace(/[eotu]/g, "a")}-missing${i}`)
    let best = Infinity
    for (let i = 0; i < 5; i++) {
      const r = await queryValidPaths(d.socket, paths)
      if (r.valid !== small.length) throw new Error(`expected ${small.length} valid paths, got ${r.valid}`)
      best = Math.min(best, r.seconds)
    }
    return best
  })

  printTable(`bench/daemon: b3 daemon vs nix-daemon (Nix 2.8), Nix's client${quick ? " (quick)" : ""}`, rows)
} finally {
  spawnSync("chmod", ["-R", "u+w", work])
  rmSync(work, { recursive: true, force: true })
}
