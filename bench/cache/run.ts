/**
 * bench/cache, in one run on the same cache files:
 *  - serving: `b3 serve` vs `python3 -m http.server` (a static file server) over one binary cache,
 *    fetched with curl: (a) one 1 GiB NAR, (b) 1,000 narinfo + NAR pairs of small paths;
 *    time of the client, peak RSS of the server;
 *  - copying: `b3 copy --from file://…` vs `nix copy --from file://…` of the same closure into a fresh
 *    chroot store: wall time, CPU time and peak RSS of the copying command, and b3 once more without
 *    fsync (B3_BENCH_NO_FSYNC=1, measurement only) for the share durability costs.
 *   npm run bench:cache [-- --quick] [-- --copy-only]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { bigFile } from "../support/inputs.ts"
import { compareCopies } from "../support/copy-compare.ts"
import { measure, printTable, runOrThrow, type Measurement, type Row } from "../support/measure.ts"

const quick = process.argv.includes("--quick")
const copyOnly = process.argv.includes("--copy-only")
const bigMiB = quick ? 64 : 1024
const smallCount = quick ? 200 : 1000
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
const work = mkdtempSync(join(tmpdir(), "b3-bench-cache-"))

const run = runOrThrow

/** Starts a server, waits for its first stdout/stderr line matching `ready`, returns it with its port. */
const startServer = (command: string, args: ReadonlyArray<string>, ready: RegExp): Promise<{ child: ChildProcess; port: number }> =>
  new Promise((resolve, reject) => {
    // Only stdout (where both servers announce their port) is read; a request log on a pipe nobody
    // drains while spawnSync blocks the event loop would stall the server.
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "ignore"] })
    let seen = ""
    const onData = (chunk: Buffer) => {
      seen += chunk.toString()
      const match = ready.exec(seen)
      if (match) resolve({ child, port: Number(match[1]) })
    }
    child.stdout!.on("data", onData)
    child.on("exit", (code) => reject(new Error(`${command} exited (${code}): ${seen}`)))
  })

/** Peak RSS of a running process (VmHWM), in MiB. */
const peakRss = (pid: number): number =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024

const freePort = (): number => 20000 + Math.floor(Math.random() * 20000)

/** The NAR URL a server's narinfo for `hash` names (servers may lay out NARs differently). */
const servedNarUrl = async (base: string, hash: string): Promise<string> => {
  const text = await (await fetch(`${base}/${hash}.narinfo`)).text()
  return /^URL: (.*)$/m.exec(text)![1]!
}

const serveWith = async (server: "b3" | "static", cache: string, client: (base: string) => Promise<string>): Promise<Measurement> => {
  const started = server === "b3"
    ? await startServer(b3, ["serve", "--store", `file://${cache}`, "--listen", "127.0.0.1:0", "--quiet"], /at http:\/\/127\.0\.0\.1:(\d+)/)
    : await (async () => {
      const port = freePort()
      return startServer("python3", ["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", cache, String(port)], new RegExp(`port (${port})`))
    })()
  try {
    const m = measure(await client(`http://127.0.0.1:${started.port}`), { runs: 2 })
    return { seconds: m.seconds, peakRssMiB: peakRss(started.child.pid!) }
  } finally {
    started.child.kill("SIGTERM")
  }
}

try {
  // A store with one big path and many small ones, pushed uncompressed to a file cache.
  const store = `local?root=${join(work, "store")}`
  const big = run(b3, ["store", "add", "--store", store, bigFile(join(work, "big"), bigMiB)])
  const smallDir = join(work, "small")
  mkdirSync(smallDir)
  for (let i = 0; i < smallCount; i++) writeFileSync(join(smallDir, `s${i}`), `small path ${i}\n`.repeat(1 + (i % 50)))
  const small = run(b3, ["store", "add", "--store", store, ...readdirSync(smallDir).map((f) => join(smallDir, f))]).split("\n")
  const cache = join(work, "cache")
  run(b3, ["copy", "--from", store, "--to", `file://${cache}?compression=none`, "--no-check-sigs", big, ...small])

  const hashOf = (path: string) => path.slice("/nix/store/".length, "/nix/store/".length + 32)
  /** A curl config fetching each small path's narinfo and then the NAR it names. */
  const curlConfig = async (base: string) => {
    const file = join(work, "curl.cfg")
    const lines: Array<string> = []
    for (const path of small) {
      const hash = hashOf(path)
      lines.push(`url = "${base}/${hash}.narinfo"`, `output = "/dev/null"`, `url = "${base}/${await servedNarUrl(base, hash)}"`, `output = "/dev/null"`)
    }
    writeFileSync(file, lines.join("\n"))
    return file
  }
  const rows: Array<Row> = []
  const bigClient = async (base: string) => `curl -sf -o /dev/null ${base}/${await servedNarUrl(base, hashOf(big))}`
  const smallClient = async (base: string) => `curl -sf -K ${await curlConfig(base)}`
  if (!copyOnly) {
  rows.push({ case: `serve one ${bigMiB} MiB NAR (server RSS)`, b3: await serveWith("b3", cache, bigClient), nix: await serveWith("static", cache, bigClient) })
  rows.push({ case: `serve ${smallCount} narinfo+NAR pairs (server RSS)`, b3: await serveWith("b3", cache, smallClient), nix: await serveWith("static", cache, smallClient) })
  printTable("bench/cache: b3 serve vs python3 -m http.server (the 'Nix' column) on the same cache files", rows)
  }

  compareCopies({ work, cache, paths: [big, ...small], runs: quick ? 2 : 3, title: `bench/cache: ${1 + smallCount} paths (${bigMiB} MiB + small)` })
} finally {
  spawnSync("chmod", ["-R", "u+w", work])
  rmSync(work, { recursive: true, force: true })
}
