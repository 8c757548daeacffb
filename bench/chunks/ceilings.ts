/**
 * bench/chunks ceilings: what this machine can do at all, per stage of the chunk store's ingest and
 * serving, on the same NAR bytes the throughput rows use. Each stage alone (nothing else of b3):
 *
 *  - sha256 (Node's OpenSSL), one core: of the whole NAR, and of its 64 KiB chunks;
 *  - the WebAssembly FastCDC cutter (the Chunker, copying each chunk out), one core;
 *  - super-features (the WebAssembly sampler and the 12 transforms), one core;
 *  - zstd of each chunk at level 3 (the store's) and 1, in Node on libuv's threads (both cores),
 *    and `zstd -3 -T2` / `zstd -1 -T2` on the whole file (zstd(1), large windows, both cores);
 *  - zstd decompression of those chunk frames in Node (both cores), and `zstd -d` (one core);
 *  - writing the file as 32 MiB files, each made durable (fdatasync), as packs are written;
 *  - serving the NAR file over loopback: nginx (bench/support/nginx.ts, sendfile) and a bare
 *    node:http server writing the NAR from memory (Node's own socket ceiling), read by curl.
 *
 * The stages ingest needs for every byte (sha256 of the NAR, the cutter, sha256 of the chunks,
 * super-features, writing the packs; zstd for data that compresses) add up: their CPU time per byte,
 * spread over all the cores with nothing lost, bounds what any ingest here can reach.
 *
 *   node bench/chunks/ceilings.ts [--quick] [--runs N] [FILE…]    (default: bench/chunks' big path,
 *   1 GiB or 128 MiB with --quick, plus corpus (a)'s NARs when they are in the npm cache)
 */
import { spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { constants, zstdCompress, zstdDecompress } from "node:zlib"
import { Effect, Result, Stream } from "effect"
import { Chunker, makeCutter } from "../../src/core/chunks/fastcdc.ts"
import { superFeatures } from "../../src/core/chunks/resemblance.ts"
import { defaultChunking } from "../../src/layers/chunked/chunked-store.ts"
import { narFromPath } from "../../src/nar/fs/index.ts"
import { bigFile } from "../support/inputs.ts"
import { startNginx } from "../support/nginx.ts"

export interface Ceiling {
  readonly name: string
  /** Bytes of input (uncompressed) per second. */
  readonly rate: number
  /** CPU seconds (all of this process's threads) per byte of input, where measured. */
  readonly cpuPerByte?: number
  readonly note?: string
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** The median run of `f`: its seconds and this process's CPU seconds (all threads). */
const timedCpu = async (runs: number, f: () => unknown): Promise<{ seconds: number; cpu: number }> => {
  const times: Array<{ seconds: number; cpu: number }> = []
  for (let r = 0; r < runs; r++) {
    const t = performance.now()
    const c0 = process.cpuUsage()
    await f()
    const c = process.cpuUsage(c0)
    times.push({ seconds: (performance.now() - t) / 1000, cpu: (c.user + c.system) / 1e6 })
  }
  return [...times].sort((a, b) => a.seconds - b.seconds)[Math.floor(times.length / 2)]!
}

/** The file in 4 MiB pieces (read once: the CPU stages below are measured without I/O). */
const load = (file: string): Array<Buffer> => {
  const fd = openSync(file, "r")
  const pieces: Array<Buffer> = []
  try {
    for (;;) {
      const b = Buffer.allocUnsafe(4 << 20)
      let n = 0
      for (let r; n < b.length && (r = readSync(fd, b, n, b.length - n, null)) > 0;) n += r
      if (n === 0) break
      pieces.push(b.subarray(0, n))
      if (n < b.length) break
    }
  } finally { closeSync(fd) }
  return pieces
}

/** zstd of one chunk on libuv's threads, sized for it (one output buffer, tables for its size), as the store calls it. */
const zstdOne = (bytes: Uint8Array, level: number) => new Promise<Buffer>((resolve, reject) =>
  zstdCompress(bytes, { chunkSize: bytes.length + (bytes.length >> 7) + 512, pledgedSrcSize: bytes.length, params: { [constants.ZSTD_c_compressionLevel]: level } }, (e, out) => (e ? reject(e) : resolve(out))))
const unzstdOne = (bytes: Uint8Array, size: number) => new Promise<Buffer>((resolve, reject) =>
  zstdDecompress(bytes, { chunkSize: size, maxOutputLength: size }, (e, out) => (e ? reject(e) : resolve(out))))

/** Runs `f` over `items`, `concurrency` at once (libuv's threads do the work). */
const pool = async <A, B>(items: ReadonlyArray<A>, concurrency: number, f: (a: A) => Promise<B>): Promise<Array<B>> => {
  const out: Array<B> = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) { const i = next++; out[i] = await f(items[i]!) }
  }))
  return out
}

const shell = (script: string): number => {
  const t = performance.now()
  const r = spawnSync("sh", ["-c", script], { stdio: ["ignore", "ignore", "pipe"] })
  if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`)
  return (performance.now() - t) / 1000
}

/** curl to /dev/null, asynchronously (a server in this process keeps running); seconds and bytes. */
const curl = (url: string) => new Promise<{ seconds: number; bytes: number }>((resolve, reject) => {
  const child = spawn("curl", ["-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url], { stdio: ["ignore", "pipe", "ignore"] })
  let out = ""
  child.stdout.on("data", (d: Buffer) => { out += d.toString() })
  child.on("exit", (code) => code === 0 ? resolve({ seconds: Number(out.split(" ")[0]), bytes: Number(out.split(" ")[1]) }) : reject(new Error(`curl ${url}: exit ${code}`)))
})

export const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")

/** The CPU stages (in memory) on `files` taken as one stream of bytes. */
export const cpuCeilings = async (files: ReadonlyArray<string>, runs: number): Promise<{ rows: Array<Ceiling>; bytes: number }> => {
  const pieces = files.flatMap(load)
  const bytes = pieces.reduce((n, p) => n + p.length, 0)
  const rows: Array<Ceiling> = []
  const row = (name: string, m: { seconds: number; cpu: number }, note?: string) => {
    const c: Ceiling = { name, rate: bytes / m.seconds, cpuPerByte: m.cpu / bytes, ...(note === undefined ? {} : { note }) }
    rows.push(c)
    return c
  }
  row("sha256 of the NAR (Node, 1 core)", await timedCpu(runs, () => { const h = createHash("sha256"); for (const p of pieces) h.update(p); h.digest() }))
  let chunks: Array<Uint8Array> = []
  row("FastCDC cutter, WebAssembly, 16/64/256 KiB (1 core, chunks copied out)", await timedCpu(runs, () => {
    chunks = []
    const chunker = new Chunker(Result.getOrThrow(makeCutter(defaultChunking)))
    for (const p of pieces) chunker.push(p, (c) => chunks.push(c))
    chunker.end((c) => chunks.push(c))
  }))
  row(`sha256 of each chunk (Node, 1 core, ${chunks.length} chunks)`, await timedCpu(runs, () => { for (const c of chunks) createHash("sha256").update(c).digest() }))
  row("super-features of each chunk (WebAssembly sampler, 1 core)", await timedCpu(runs, () => { for (const c of chunks) superFeatures(c) }))
  const threads = Math.max(4, cpus().length * 2)
  const frames: Record<number, Array<Buffer>> = {}
  for (const level of [3, 1]) {
    const m = await timedCpu(runs, async () => { frames[level] = await pool(chunks, threads, (c) => zstdOne(c, level)) })
    const stored = frames[level]!.reduce((n, f, i) => n + Math.min(f.length, chunks[i]!.length), 0)
    row(`zstd -${level} of each chunk (Node, libuv threads, ${cpus().length} cores)`, m, `stored ${(stored / bytes).toFixed(3)} of the bytes`)
  }
  row("zstd -d of each level-3 chunk frame (Node, libuv threads, all cores)", await timedCpu(runs, () => pool(frames[3]!.map((f, i) => [f, chunks[i]!.length] as const), threads, ([f, n]) => unzstdOne(f, n))))
  return { rows, bytes }
}

/**
 * What any ingest here can reach at most: the CPU time per byte of the stages every byte goes
 * through (sha256 of the NAR, the cutter, sha256 of the chunks, super-features, writing the packs;
 * and zstd -3 for data that compresses) spread over all the cores with nothing lost.
 */
export const ingestBounds = (rows: ReadonlyArray<Ceiling>): Array<Ceiling> => {
  const cores = cpus().length
  const cost = (prefix: string) => rows.find((r) => r.name.startsWith(prefix))?.cpuPerByte ?? 0
  const base = ["sha256 of the NAR", "FastCDC cutter", "sha256 of each chunk", "super-features", "writing it as 32 MiB files"].reduce((n, k) => n + cost(k), 0)
  const zstd3 = cost("zstd -3 of each chunk")
  return [
    { name: `ingest bound, data stored raw: the CPU time of sha256 ×2, cutter, super-features and writing, over ${cores} cores`, rate: cores / base },
    { name: `ingest bound, data compressed: the same + zstd -3, over ${cores} cores`, rate: cores / (base + zstd3) }
  ]
}

/** zstd(1) on the whole file, and `zstd -d`; nginx and a bare node:http server sending it over loopback. */
export const fileCeilings = async (file: string, work: string, runs: number): Promise<Array<Ceiling>> => {
  const size = statSync(file).size
  const rows: Array<Ceiling> = []
  for (const level of [3, 1]) {
    const seconds = median(Array.from({ length: runs }, () => shell(`zstd -${level} -T2 -q -c '${file}' > /dev/null`)))
    rows.push({ name: `zstd -${level} -T2 on the file (zstd(1), whole stream)`, rate: size / seconds })
  }
  const packed = join(work, "ceiling.zst")
  shell(`zstd -3 -T2 -q -f -o '${packed}' '${file}'`)
  rows.push({ name: "zstd -d of that (zstd(1), 1 core)", rate: size / median(Array.from({ length: runs }, () => shell(`zstd -d -q -c '${packed}' > /dev/null`))) })
  rmSync(packed, { force: true })
  // writing it as packs are written: 32 MiB files, each made durable (fdatasync) and renamed into place
  const pieces32 = load(file)
  const write = await timedCpu(runs, async () => {
    const { open, rename, rm } = await import("node:fs/promises")
    const dir = join(work, "packs")
    mkdirSync(dir, { recursive: true })
    for (let i = 0; i < pieces32.length; i += 8) {
      const handle = await open(join(dir, "tmp"), "w")
      await handle.writev(pieces32.slice(i, i + 8))
      await handle.datasync()
      await handle.close()
      await rename(join(dir, "tmp"), join(dir, `p${i}`))
    }
    await rm(dir, { recursive: true, force: true })
  })
  rows.push({ name: "writing it as 32 MiB files, each fdatasync'ed (as packs are written)", rate: size / write.seconds, cpuPerByte: write.cpu / size })
  // nginx serving the file
  const root = join(work, "nginx-root")
  mkdirSync(join(root, "nar"), { recursive: true })
  spawnSync("ln", ["-f", file, join(root, "nar", "ceiling.nar")])
  const nginx = await startNginx(root, work)
  try {
    await curl(`${nginx.base}/nar/ceiling.nar`) // warm
    const times: Array<number> = []
    for (let r = 0; r < runs; r++) {
      const got = await curl(`${nginx.base}/nar/ceiling.nar`)
      if (got.bytes !== size) throw new Error(`nginx sent ${got.bytes} bytes of ${size}`)
      times.push(got.seconds)
    }
    rows.push({ name: "nginx serving the NAR file over loopback (sendfile; curl)", rate: size / median(times) })
  } finally { nginx.stop() }
  // node:http writing the NAR from memory, 4 MiB at a time with back-pressure
  const pieces = load(file)
  const server = createServer((_, response) => {
    response.writeHead(200, { "content-length": String(size) })
    let i = 0
    const pump = () => { while (i < pieces.length) { if (!response.write(pieces[i++]!)) { response.once("drain", pump); return } } response.end() }
    pump()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
    await curl(url)
    const times: Array<number> = []
    for (let r = 0; r < runs; r++) times.push((await curl(url)).seconds)
    rows.push({ name: "node:http writing the NAR from memory over loopback (curl)", rate: size / median(times) })
  } finally { server.close() }
  return rows
}

export const printCeilings = (title: string, rows: ReadonlyArray<Ceiling>) => {
  console.log(`\n${title}\n`)
  console.log("| stage alone | MB/s | CPU s per GB | |\n|---|---|---|---|")
  for (const r of rows) console.log(`| ${r.name} | ${(r.rate / 1e6).toFixed(0)} | ${r.cpuPerByte === undefined ? "" : (r.cpuPerByte * 1e9).toFixed(2)} | ${r.note ?? ""} |`)
}

/** bench/chunks' throughput path: bench/support's big file of `mib` MiB as a NAR file. */
export const bigNar = (work: string, mib: number) => Effect.gen(function*() {
  const file = bigFile(join(work, "big"), mib)
  const narFile = join(work, "big.nar")
  const fd = openSync(narFile, "w")
  yield* Stream.runForEach(narFromPath(file), (c) => Effect.sync(() => { writeSync(fd, c) })).pipe(Effect.ensuring(Effect.sync(() => closeSync(fd))))
  rmSync(file)
  return narFile
})

const main = async () => {
  const quick = process.argv.includes("--quick")
  const runsAt = process.argv.indexOf("--runs")
  const runs = runsAt >= 0 ? Number(process.argv[runsAt + 1]) : quick ? 1 : 3
  const given = process.argv.slice(2).filter((a, i, all) => !a.startsWith("--") && all[i - 1] !== "--runs")
  const work = mkdtempSync(join(tmpdir(), "b3-bench-ceilings-"))
  try {
    console.log(`bench/chunks ceilings: load ${loadAverage()} (${cpus().length} cores)`)
    const big = given.length > 0 ? given : [await Effect.runPromise(bigNar(work, quick ? 128 : 1024))]
    const cpu = await cpuCeilings(big, runs)
    const file = await fileCeilings(big[0]!, work, runs)
    printCeilings(`CPU stages on ${(cpu.bytes / 2 ** 20).toFixed(0)} MiB (${given.length > 0 ? given.join(", ") : "bench/chunks' big path"}), median of ${runs}, load ${loadAverage()}`, [...cpu.rows, ...ingestBounds([...cpu.rows, ...file])])
    printCeilings(`the file (${(statSync(big[0]!).size / 2 ** 20).toFixed(0)} MiB): zstd(1), writing, serving over loopback, median of ${runs}, load ${loadAverage()}`, file)
    if (given.length === 0) {
      const { npmCorpus } = await import("./corpus.ts")
      const a = await Effect.runPromise(npmCorpus(join(work, "a"), quick ? [{ name: "typescript", count: 3 }] : [{ name: "typescript", count: 10 }, { name: "@esbuild/linux-x64", count: 10 }]))
      const ca = await cpuCeilings(a.map((p) => p.narFile), runs)
      printCeilings(`CPU stages on corpus (a), ${a.length} NARs, ${(ca.bytes / 2 ** 20).toFixed(0)} MiB, median of ${runs}, load ${loadAverage()}`, [...ca.rows, ...ingestBounds([...ca.rows, ...file])])
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main().catch((e) => { console.error(e); process.exit(1) })
