/**
 * bench/substitute: resolving and fetching a large closure from an HTTP binary cache that is "far
 * away" — every request goes through a test proxy on 127.0.0.1 (bench/support/latency-proxy.ts) that
 * adds 20 ms. `b3 copy --from http://proxy --to local?root=…` of the whole closure against
 * `nix copy --from http://proxy --to /tmp/…` (Nix 2.8, its narinfo disk cache fresh each run) over the
 * same proxy; wall time, CPU and peak RSS of each.
 *
 * The closure is generated: N input-addressed-looking paths with small NARs (a directory with a
 * script that names its references, a data file of 0.5–16 KiB, now and then a symlink), in layers
 * like a package set's (each path refers to a few paths of the layers below, most often the one just
 * below, and to a handful of "stdenv-like" hubs at the bottom), and one root referring to every path
 * nothing else refers to. Uncompressed NARs (compression=none), unsigned (both sides --no-check-sigs).
 * Beside them, bare Node doing the same fetches (node-floor.ts), and `node -e 0` and `b3 --version`:
 * the peak RSS no copy in Node can go below, and b3's fixed cost on top of Node's.
 *
 *   npm run bench:substitute [-- --quick] [-- --paths N] [-- --latency MS] [-- --runs N]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Hash from "../../src/core/hash.ts"
import * as NarInfo from "../../src/core/narinfo.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import { best, loadAverage, timed, type Timed } from "../support/timed.ts"

const arg = (name: string) => { const i = process.argv.indexOf(`--${name}`); return i < 0 ? undefined : process.argv[i + 1] }
const quick = process.argv.includes("--quick")
const count = Number(arg("paths") ?? (quick ? 1000 : 10_000))
const latency = Number(arg("latency") ?? 20)
const runs = Number(arg("runs") ?? (quick ? 1 : 2))
const skipNix = process.argv.includes("--no-nix")
/** `--generate DIR`: only write the cache into DIR and print the root (for profiling by hand). */
const generateOnly = arg("generate")
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
const node = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url))
const proxyScript = fileURLToPath(new URL("../support/latency-proxy.ts", import.meta.url))
const floorScript = fileURLToPath(new URL("./node-floor.ts", import.meta.url))
/** V8 flags for the floor: those bin/b3 gives an HTTP copy, and the tightest (slowest) ones. */
const floorFlags = {
  "b3's": "--heap-growing-percent=50 --max-opt=2 --no-concurrent-recompilation --max-semi-space-size=8",
  tightest: "--heap-growing-percent=50 --max-opt=1 --max-semi-space-size=2"
}
const work = mkdtempSync(join(tmpdir(), "b3-bench-subst-"))
const storeDir = StorePath.defaultStoreDir

/** A deterministic pseudo-random generator (mulberry32), so every run generates the same closure. */
const random = (() => {
  let a = 0x5eed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
})()
const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!

/** Generates the closure into `cache` (a binary cache directory); returns the root's store path. */
const generate = (cache: string, n: number): { root: string; bytes: number } => {
  mkdirSync(join(cache, "nar"), { recursive: true })
  writeFileSync(join(cache, "nix-cache-info"), `StoreDir: ${storeDir}\nWantMassQuery: 1\nPriority: 40\n`)
  const layers = Math.max(4, Math.min(40, Math.round(Math.sqrt(n) / 2.5)))
  const perLayer = Math.ceil(n / layers)
  const paths: Array<{ path: StorePath.StorePath; layer: number; refs: Array<number> }> = []
  for (let i = 0; i < n; i++) {
    const path = StorePath.make("output:out", Hash.hashBytes("sha256", `bench-substitute-${i}`), `pkg${i}-1.${i % 7}`)
    paths.push({ path, layer: Math.floor(i / perLayer), refs: [] })
  }
  const hubs = paths.slice(0, Math.min(8, perLayer)).map((_, i) => i)
  const referenced = new Set<number>()
  for (let i = 0; i < n; i++) {
    const me = paths[i]!
    if (me.layer === 0) continue
    const below = (layer: number) => { const start = layer * perLayer; return Array.from({ length: perLayer }, (_, k) => start + k).filter((k) => k < i) }
    const refs = new Set<number>()
    refs.add(pick(hubs))
    const direct = 1 + Math.floor(random() * 4)
    for (let k = 0; k < direct; k++) refs.add(pick(below(me.layer - 1)))
    if (me.layer > 1 && random() < 0.6) refs.add(pick(below(Math.floor(random() * (me.layer - 1)))))
    me.refs = [...refs]
    for (const r of refs) referenced.add(r)
  }
  const rootPath = StorePath.make("output:out", Hash.hashBytes("sha256", "bench-substitute-root"), "closure-root")
  let bytes = 0
  const write = (path: StorePath.StorePath, refs: ReadonlyArray<StorePath.StorePath>, i: number) => {
    const script = `#!/bin/sh\n# ${StorePath.baseName(path)}\n${refs.map((r) => `. ${StorePath.print(r, storeDir)}/bin/run\n`).join("")}`
    const dataSize = 512 + Math.floor(random() * random() * 16 * 1024)
    const data = new Uint8Array(dataSize)
    for (let k = 0; k < dataSize; k++) data[k] = (i * 31 + k * 7) & 0xff
    const entries: Record<string, Tree.Tree> = {
      bin: Tree.directory({ run: Tree.regular(script, true) }),
      share: Tree.directory({ [`data-${i}`]: Tree.regular(data) })
    }
    if (i % 5 === 0) entries["lib"] = Tree.symlink("share")
    const nar = Tree.toNar(Tree.directory(entries))
    if (nar._tag !== "Success") throw new Error("cannot make a NAR")
    const narHash = Hash.hashBytes("sha256", nar.success)
    const url = `nar/${Hash.print(narHash, "base32")}.nar`
    writeFileSync(join(cache, url), nar.success)
    bytes += nar.success.length
    writeFileSync(join(cache, `${path.hashPart}.narinfo`), NarInfo.print({
      storePath: StorePath.print(path, storeDir), url, compression: "none", fileHash: narHash, fileSize: nar.success.length,
      narHash, narSize: nar.success.length, references: refs.map(StorePath.baseName), sigs: []
    }))
  }
  for (let i = 0; i < n; i++) write(paths[i]!.path, paths[i]!.refs.map((r) => paths[r]!.path), i)
  write(rootPath, paths.filter((_, i) => !referenced.has(i)).map((p) => p.path), n)
  return { root: StorePath.print(rootPath, storeDir), bytes }
}

/** Starts the latency proxy over the cache directory in its own process. */
const startProxy = (cache: string): Promise<{ child: ChildProcess; url: string }> => new Promise((resolve, reject) => {
  const child = spawn(node, [proxyScript, "--latency", String(latency), "--serve-dir", cache], { stdio: ["ignore", "pipe", "inherit"] })
  let seen = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    seen += chunk.toString()
    const match = /listening on (http:\/\/\S+)/.exec(seen)
    if (match) resolve({ child, url: match[1]! })
  })
  child.on("exit", (code) => reject(new Error(`latency proxy exited (${code}): ${seen}`)))
})

const fmt = (t: Timed) => `${t.seconds.toFixed(2)} s wall, ${t.cpuSeconds.toFixed(2)} s CPU, ${t.peakRssMiB.toFixed(0)} MiB`

if (generateOnly !== undefined) {
  console.log(generate(generateOnly, count).root)
  rmSync(work, { recursive: true, force: true })
  process.exit(0)
}

try {
  const cache = join(work, "cache")
  const started = Date.now()
  const { root, bytes } = generate(cache, count)
  console.error(`generated ${count + 1} paths (${(bytes / 1048576).toFixed(1)} MiB of NARs) in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  const proxy = await startProxy(cache)
  try {
    const b3Runs: Array<Timed> = []
    const nixRuns: Array<Timed> = []
    for (let i = 0; i < runs; i++) {
      const target = join(work, `b3-${i}`)
      const load = loadAverage()
      b3Runs.push(timed(`${b3} copy --from ${proxy.url} --to 'local?root=${target}' --no-check-sigs --closure --quiet ${root}`))
      console.error(`b3 run ${i + 1}: ${fmt(b3Runs.at(-1)!)} (load before: ${load})`)
      spawnSync("rm", ["-rf", target])
      if (skipNix) continue
      const nixTarget = join(work, `nix-${i}`)
      const cacheHome = join(work, `xdg-${i}`)
      const nixLoad = loadAverage()
      nixRuns.push(timed(`nix copy --from ${proxy.url} --to ${nixTarget} --no-check-sigs --option substituters '' ${root}`,
        { ...process.env, NIX_CONFIG: "experimental-features = nix-command", XDG_CACHE_HOME: cacheHome }))
      console.error(`nix run ${i + 1}: ${fmt(nixRuns.at(-1)!)} (load before: ${nixLoad})`)
      spawnSync("rm", ["-rf", nixTarget, cacheHome])
    }
    // bare Node doing the same fetches (node-floor.ts): what a copy's peak RSS cannot go below in Node
    const floors = Object.entries(floorFlags).map(([name, flags]) => {
      const t = timed(`${node} ${flags} ${floorScript} ${proxy.url} ${root}`, { ...process.env, MALLOC_ARENA_MAX: "1" })
      console.error(`bare Node, ${name} flags: ${fmt(t)}`)
      return { name, flags, ...t }
    })
    const nodeAlone = timed(`${node} -e 0`)
    const b3Alone = timed(`${b3} --version`)
    const b = best(b3Runs)
    console.log(`\nbench/substitute: ${count + 1} paths (${(bytes / 1048576).toFixed(1)} MiB of uncompressed NARs) over HTTP with ${latency} ms added per request; best of ${runs}; load average at the end ${loadAverage()}\n`)
    console.log("| tool | wall (s) | CPU (s) | peak RSS (MiB) | wall ratio Nix/b3 |")
    console.log("|---|---|---|---|---|")
    if (nixRuns.length > 0) {
      const n = best(nixRuns)
      console.log(`| b3 copy | ${b.seconds.toFixed(2)} | ${b.cpuSeconds.toFixed(2)} | ${b.peakRssMiB.toFixed(0)} | ${(n.seconds / b.seconds).toFixed(1)}× faster |`)
      console.log(`| nix copy | ${n.seconds.toFixed(2)} | ${n.cpuSeconds.toFixed(2)} | ${n.peakRssMiB.toFixed(0)} | |`)
      console.log("\n" + JSON.stringify({ benchmark: "bench/substitute", paths: count + 1, latencyMs: latency, b3: b, nix: n, speedup: n.seconds / b.seconds }))
    } else {
      console.log(`| b3 copy | ${b.seconds.toFixed(2)} | ${b.cpuSeconds.toFixed(2)} | ${b.peakRssMiB.toFixed(0)} | |`)
    }
    for (const f of floors) console.log(`| bare Node fetching the same (no store, no checks), ${f.name} V8 flags | ${f.seconds.toFixed(2)} | ${f.cpuSeconds.toFixed(2)} | ${f.peakRssMiB.toFixed(0)} | |`)
    console.log(`\nstarting: \`node -e 0\` ${nodeAlone.peakRssMiB.toFixed(0)} MiB, \`b3 --version\` ${b3Alone.peakRssMiB.toFixed(0)} MiB (b3's fixed cost: ${(b3Alone.peakRssMiB - nodeAlone.peakRssMiB).toFixed(0)} MiB)`)
    console.log(JSON.stringify({ benchmark: "bench/substitute floor", floors, nodeAlone, b3Alone }))
  } finally {
    proxy.child.kill("SIGTERM")
  }
} finally {
  spawnSync("chmod", ["-R", "u+w", work])
  rmSync(work, { recursive: true, force: true })
}
