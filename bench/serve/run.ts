/**
 * bench/serve: serving a binary cache, `b3 serve` against nginx (Debian's, started here on
 * 127.0.0.1 with sendfile) on the same generated closure: 373 paths of 1 KiB–100 MiB (log-uniform
 * sizes, about 1.5 GiB of NARs, half of each file compressible text), 16 concurrent keep-alive
 * clients. Cases:
 *  - all narinfos looked up: nginx serving the file cache, b3 serving the file cache and the local store;
 *  - all NARs downloaded: the same three;
 *  - on-the-fly zstd from the local store (`--compression zstd`): throughput and ratio;
 *  - the closure copied from the file cache into a fresh chroot store: `b3 copy` against `nix copy`
 *    (wall and CPU time, peak RSS, and b3 without fsync for the share durability costs).
 * Median of several runs each; peak RSS of the server process (nginx: its largest worker).
 *   npm run bench:serve [-- --quick]
 */
import { spawn, spawnSync } from "node:child_process"
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs"
import { Agent, request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { compareCopies } from "../support/copy-compare.ts"
import { runOrThrow } from "../support/measure.ts"
import { startNginx } from "../support/nginx.ts"

const quick = process.argv.includes("--quick")
const count = quick ? 60 : 373
const totalBytes = quick ? 200 * 2 ** 20 : 1.5 * 2 ** 30
const concurrency = 16
const runs = quick ? 2 : 3
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
/** `--keep DIR`: make the corpus in DIR once and reuse it on later runs (for iterating); default: a fresh temp dir, removed. */
const keepAt = process.argv.indexOf("--keep")
const kept = keepAt >= 0 ? process.argv[keepAt + 1]! : undefined
/** `--only NAME,…`: run only these cases (nginx, file, local, zstd, copy). */
const onlyAt = process.argv.indexOf("--only")
const only = onlyAt >= 0 ? new Set(process.argv[onlyAt + 1]!.split(",")) : undefined
const wanted = (name: string) => only === undefined || only.has(name)
const work = kept ?? mkdtempSync(join(tmpdir(), "b3-bench-serve-"))

/** A deterministic generator (xorshift32). */
const random = (seed: number) => () => {
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5
  return (seed >>> 0) / 2 ** 32
}

/** Sizes between 1 KiB and 100 MiB, log-uniform, scaled so that they add up to about `totalBytes`. */
const sizes = (): Array<number> => {
  const next = random(373)
  const raw = Array.from({ length: count }, () => Math.exp(Math.log(1024) + next() * (Math.log(100 * 2 ** 20) - Math.log(1024))))
  const scale = totalBytes / raw.reduce((a, b) => a + b, 0)
  return raw.map((s) => Math.max(1024, Math.min(100 * 2 ** 20, Math.round(s * scale))))
}

/** A file of `size` bytes: alternating 64 KiB blocks of random bytes and of text (so zstd has work to do). */
const writeFile = (path: string, size: number, seed: number) => {
  const next = random(seed + 1)
  const fd = openSync(path, "w")
  const block = Buffer.alloc(64 * 1024)
  const words = ["store", "path", "derivation", "output", "closure", "narinfo", "reference", "hash"]
  for (let written = 0, i = 0; written < size; i++) {
    if (i % 2 === 0) for (let j = 0; j < block.length; j += 4) block.writeUInt32LE((next() * 2 ** 32) >>> 0, j)
    else {
      let text = ""
      while (text.length < block.length) text += `${words[Math.floor(next() * words.length)]} ${Math.floor(next() * 1000)}\n`
      block.write(text.slice(0, block.length), "latin1")
    }
    const n = Math.min(block.length, size - written)
    writeSync(fd, block, 0, n)
    written += n
  }
  closeSync(fd)
}

const peakRssMiB = (pid: number): number => {
  try { return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024 } catch { return 0 }
}

/** GETs every URL with `concurrency` keep-alive connections, draining bodies; returns seconds and bytes. */
const fetchAll = (base: string, paths: ReadonlyArray<string>): Promise<{ seconds: number; bytes: number }> => new Promise((resolve, reject) => {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const started = process.hrtime.bigint()
  let next = 0
  let bytes = 0
  let active = 0
  const go = () => {
    if (next >= paths.length) {
      if (active === 0) { agent.destroy(); resolve({ seconds: Number(process.hrtime.bigint() - started) / 1e9, bytes }) }
      return
    }
    const path = paths[next++]!
    active++
    request(`${base}/${path}`, { agent }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`GET ${path}: ${res.statusCode}`))
      res.on("data", (chunk: Buffer) => { bytes += chunk.length })
      res.on("end", () => { active--; go() })
    }).on("error", reject).end()
  }
  for (let i = 0; i < concurrency; i++) go()
})

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

/** The NAR URL each narinfo names. */
const narUrls = async (base: string, hashes: ReadonlyArray<string>) => {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const urls = await Promise.all(hashes.map((hash) => new Promise<string>((resolve, reject) => {
    request(`${base}/${hash}.narinfo`, { agent }, (res) => {
      let text = ""
      res.on("data", (c: Buffer) => { text += c.toString() })
      res.on("end", () => resolve(/^URL: (.*)$/m.exec(text)![1]!))
    }).on("error", reject).end()
  })))
  agent.destroy()
  return urls
}

interface Case { readonly name: string; readonly seconds: number; readonly bytes: number; readonly rss: number }

/** A server under test: its base URL, the pids whose peak RSS counts, and how to stop it. */
interface Server { readonly name: string; readonly base: string; readonly pids: () => ReadonlyArray<number>; readonly stop: () => void }

/** The largest peak RSS among a server's processes so far, MiB. */
const peakRssOf = (server: Server) => Math.max(...server.pids().map(peakRssMiB))

/** Uncounted rounds of lookups first: they fill b3's narinfo cache, warm the servers' files and let V8 compile b3's request path (a long-running server's steady state). */
const warmRounds = 5

/**
 * Lookups of every narinfo on each server, in rounds: every round visits every server (in a rotating
 * order), so a change in the machine's load over the run falls on all of them alike. Median per server.
 */
const measureLookups = async (servers: ReadonlyArray<Server>, hashes: ReadonlyArray<string>): Promise<Array<Case>> => {
  const narinfos = hashes.map((h) => `${h}.narinfo`)
  const seconds = servers.map((): Array<number> => [])
  const rounds = 2 * runs + 1
  for (let round = 0; round < warmRounds + rounds; round++) {
    for (let k = 0; k < servers.length; k++) {
      const i = (round + k) % servers.length
      const t = (await fetchAll(servers[i]!.base, narinfos)).seconds
      if (round >= warmRounds) seconds[i]!.push(t)
    }
  }
  return servers.map((s, i) => ({ name: s.name, seconds: median(seconds[i]!), bytes: 0, rss: peakRssOf(s) }))
}

/** Every NAR downloaded from one server, `runs` times; the median. */
const measureDownloads = async (server: Server, hashes: ReadonlyArray<string>): Promise<Case> => {
  const nars = await narUrls(server.base, hashes)
  const downloads: Array<{ seconds: number; bytes: number }> = []
  for (let i = 0; i < runs; i++) downloads.push(await fetchAll(server.base, nars))
  return { name: server.name, seconds: median(downloads.map((d) => d.seconds)), bytes: downloads[0]!.bytes, rss: peakRssOf(server) }
}

try {
  const files = join(work, "files")
  const root = join(work, "store")
  const store = `local?root=${root}`
  const cache = join(work, "cache")
  const pathList = join(work, "paths")
  let paths: Array<string>
  if (kept !== undefined && existsSync(pathList)) paths = readFileSync(pathList, "utf8").split("\n")
  else {
    mkdirSync(files, { recursive: true })
    const list = sizes().map((size, i) => { const path = join(files, `p${i}`); writeFile(path, size, i); return path })
    paths = runOrThrow(b3, ["store", "add", "--store", store, ...list]).split("\n")
    runOrThrow(b3, ["copy", "--from", store, "--to", `file://${cache}?compression=none`, "--no-check-sigs", ...paths])
    writeFileSync(pathList, paths.join("\n"))
  }
  const hashes = paths.map((p) => p.slice("/nix/store/".length, "/nix/store/".length + 32))
  const narBytes = Number(runOrThrow("du", ["-sb", join(cache, "nar")]).split(/\s/)[0])
  console.log(`corpus: ${paths.length} paths, ${(narBytes / 2 ** 30).toFixed(2)} GiB of NARs; ${concurrency} concurrent clients; ${runs} runs (median)`)

  const startB3 = async (name: string, args: ReadonlyArray<string>): Promise<Server> => {
    const child = spawn(b3, ["serve", "--listen", "127.0.0.1:0", "--quiet", ...args], { stdio: ["ignore", "pipe", "ignore"] })
    const port = await new Promise<number>((resolve) => {
      let seen = ""
      child.stdout.on("data", (c: Buffer) => { seen += c.toString(); const m = /at http:\/\/127\.0\.0\.1:(\d+)/.exec(seen); if (m) resolve(Number(m[1])) })
    })
    return { name, base: `http://127.0.0.1:${port}`, pids: () => [child.pid!], stop: () => { child.kill("SIGTERM") } }
  }
  const servers: Array<Server> = []
  let lookups: Array<Case> = []
  const downloads: Array<Case> = []
  try {
    if (wanted("nginx")) {
      const nginx = await startNginx(cache, work)
      servers.push({ name: "nginx, file cache", base: nginx.base, pids: nginx.workers, stop: nginx.stop })
    }
    for (const [key, name, uri] of [["file", "b3, file cache", `file://${cache}`], ["local", "b3, local store", store]] as const) {
      if (wanted(key)) servers.push(await startB3(name, ["--store", uri]))
    }
    // The client's own code warms up first (on a nix-cache-info, which changes nothing it measures):
    // otherwise the server measured first would pay for the client's first, unoptimised rounds.
    if (servers.length > 0) await fetchAll(servers[0]!.base, Array.from({ length: 4 * count }, () => "nix-cache-info"))
    lookups = await measureLookups(servers, hashes)
    for (const server of servers) downloads.push(await measureDownloads(server, hashes))
  } finally {
    for (const server of servers) server.stop()
  }
  const results = lookups.map((lookup, i) => ({ lookup, download: downloads[i]! }))

  const reference = results[0]
  const ratio = (seconds: number, ref: Case | undefined) => ref ? (seconds / ref.seconds).toFixed(2) : "–"
  console.log(`\n| case | server | time (s) | ratio to ${reference?.lookup.name ?? "–"} | MB/s | server peak RSS (MiB) |\n|---|---|---|---|---|---|`)
  for (const kind of ["lookup", "download"] as const) {
    for (const row of results.map((r) => r[kind])) {
      const mbps = kind === "download" ? (row.bytes / 1e6 / row.seconds).toFixed(0) : "–"
      console.log(`| ${kind === "lookup" ? `${count} narinfo lookups` : `${count} NAR downloads`} | ${row.name} | ${row.seconds.toFixed(3)} | ${ratio(row.seconds, reference?.[kind])} | ${mbps} | ${row.rss.toFixed(0)} |`)
    }
  }

  // On-the-fly zstd from the local store, beside zstd(1) at level 1 compressing the same NARs (one
  // process per NAR, two at a time, as the two cores allow): the CPU's ceiling on this machine.
  let zstd: object | undefined
  if (wanted("zstd")) {
    const server = await startB3("b3 zstd", ["--store", store, "--compression", "zstd"])
    const zstdUrls = await narUrls(server.base, hashes)
    const zstdRuns: Array<{ seconds: number; bytes: number }> = []
    const narDir = join(cache, "nar")
    const cli: Array<number> = []
    // alternating, so that both see the same machine
    for (let i = 0; i < runs; i++) {
      zstdRuns.push(await fetchAll(server.base, zstdUrls))
      const started = process.hrtime.bigint()
      runOrThrow("sh", ["-c", `ls ${narDir}/*.nar | xargs -P 2 -n 8 zstd -1 -q -c > /dev/null`])
      cli.push(Number(process.hrtime.bigint() - started) / 1e9)
    }
    const rss = peakRssOf(server)
    server.stop()
    const zs = median(zstdRuns.map((r) => r.seconds))
    const cs = median(cli)
    console.log(`| ${count} NAR downloads, zstd on the fly | b3, local store | ${zs.toFixed(3)} | ${ratio(zs, reference?.download)} | ${(narBytes / 1e6 / zs).toFixed(0)} (uncompressed) | ${rss.toFixed(0)} |`)
    console.log(`| the same NARs through \`zstd -1\`, 2 at a time (no HTTP) | zstd(1) | ${cs.toFixed(3)} | ${ratio(cs, reference?.download)} | ${(narBytes / 1e6 / cs).toFixed(0)} (uncompressed) | – |`)
    console.log(`zstd on the fly: ratio ${(narBytes / zstdRuns[0]!.bytes).toFixed(2)} (${(zstdRuns[0]!.bytes / 2 ** 20).toFixed(0)} MiB for ${(narBytes / 2 ** 20).toFixed(0)} MiB of NARs), ${(zs / cs).toFixed(2)}× the time of zstd -1`)
    zstd = { seconds: zs, bytes: zstdRuns[0]!.bytes, narBytes, rss, zstdCliSeconds: cs }
  }
  console.log("\n" + JSON.stringify({ benchmark: "bench/serve", load: readFileSync("/proc/loadavg", "utf8").trim(), results, zstd }))

  if (wanted("copy")) compareCopies({ work, cache, paths, runs, title: `bench/serve: the closure of ${paths.length} paths (${(narBytes / 2 ** 30).toFixed(2)} GiB)` })
} finally {
  if (kept === undefined) {
    spawnSync("chmod", ["-R", "u+w", work])
    rmSync(work, { recursive: true, force: true })
  }
}
