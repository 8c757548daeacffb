/**
 * The web view on a 20,000-path closure: JSON endpoint latency (the first request, which computes
 * the closure, and the median of 5 after it) and, in headless Chromium, the time from navigation to
 * the first paint and to the drawn treemap, sunburst and graph.
 *
 *   node bench/ui/run.ts [STORE-ROOT [PATHS]]   (default /tmp/b3-ui-bench, 20000; made when missing)
 */
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { chromium } from "playwright-core"

const repo = fileURLToPath(new URL("../../", import.meta.url))
const node = join(repo, "node_modules/.bin/node")
const b3 = join(repo, "bin/b3")
const root = process.argv[2] ?? "/tmp/b3-ui-bench"
const paths = Number(process.argv[3] ?? 20000)
const rootFile = join(root, "ROOT")

if (!existsSync(rootFile)) {
  process.stderr.write(`writing ${paths} generated paths to ${root} (a few minutes)…\n`)
  const made = spawnSync(node, [join(repo, "bench/ui/make-store.ts"), String(paths), root], { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" })
  if (made.status !== 0) throw new Error("make-store failed")
  writeFileSync(rootFile, made.stdout.trim())
}
const top = readFileSync(rootFile, "utf8").trim()
const base = top.slice(top.lastIndexOf("/") + 1)
const store = `local?root=${root}`

const startServer = () => new Promise<{ url: string; stop: () => void }>((resolve, reject) => {
  const child = spawn(b3, ["ui", "--store", store, "--listen", "127.0.0.1:0", "--json", "--quiet"], { stdio: ["ignore", "pipe", "inherit"] })
  let text = ""
  child.stdout.on("data", (chunk) => {
    text += chunk
    if (text.includes("\n")) resolve({ url: (JSON.parse(text.split("\n")[0]!) as { ui: string }).ui, stop: () => child.kill() })
  })
  child.on("close", (code) => reject(new Error(`b3 ui exited with ${code}`)))
})

const time = async (url: string) => {
  const started = performance.now()
  const response = await fetch(url)
  const body = await response.arrayBuffer()
  if (!response.ok) throw new Error(`${url}: ${response.status}`)
  return { ms: performance.now() - started, bytes: body.byteLength }
}
const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const closure = await (async () => {
  const server = await startServer()
  try {
    const api = `${server.url}api/`
    const first = await time(`${api}closure?path=${base}`)
    const json = await (await fetch(`${api}closure?path=${base}`)).json() as { paths: Array<string> }
    const deep = json.paths[json.paths.length - 1]!
    const middle = json.paths[Math.floor(json.paths.length / 2)]!
    const endpoints: Array<[string, string]> = [
      ["info", "info"],
      ["search (name part)", `search?q=${encodeURIComponent(middle.slice(33, 40))}`],
      ["path", `path?path=${base}`],
      ["closure", `closure?path=${base}`],
      ["why (deepest path)", `why?from=${base}&to=${deep}`],
      ["hits (one reference)", `hits?path=${base}&ref=${json.paths[1]}`],
      ["ls", `ls?path=${middle}`],
      ["diff (root vs a dependency)", `diff?from=${base}&to=${json.paths[1]}`]
    ]
    const rows: Array<string> = [`| closure, first request (computed) | ${first.ms.toFixed(0)} ms | ${(first.bytes / 1e6).toFixed(2)} MB |`]
    for (const [name, path] of endpoints) {
      const runs: Array<number> = []
      let bytes = 0
      for (let k = 0; k < 5; k++) { const r = await time(api + path); runs.push(r.ms); bytes = r.bytes }
      rows.push(`| ${name} | ${median(runs).toFixed(1)} ms | ${bytes < 1e5 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(2)} MB`} |`)
    }
    return { rows, count: json.paths.length }
  } finally {
    server.stop()
  }
})()

const browserTimes = async (url: string, marks: ReadonlyArray<[string, string, string]>) => {
  const profile = mkdtempSync(join(tmpdir(), "b3-ui-bench-chromium-"))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, viewport: { width: 1400, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  })
  const out: Array<string> = []
  try {
    const page = await context.newPage()
    for (const [label, route, mark] of marks) {
      const runs: Array<{ fcp: number; drawn: number }> = []
      for (let k = 0; k < 3; k++) {
        await page.goto("about:blank")
        await page.goto(`${url}#${route}`)
        await page.waitForFunction(`performance.getEntriesByName(${JSON.stringify(mark)}).length > 0`, null, { timeout: 60_000 })
        runs.push(await page.evaluate(`({ fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN, drawn: performance.getEntriesByName(${JSON.stringify(mark)})[0].startTime })`) as { fcp: number; drawn: number })
      }
      out.push(`| ${label} | ${median(runs.map((r) => r.fcp)).toFixed(0)} ms | ${median(runs.map((r) => r.drawn)).toFixed(0)} ms |`)
    }
  } finally {
    await context.close()
    rmSync(profile, { recursive: true, force: true })
  }
  return out
}

const server = await startServer()
let page: Array<string>
try {
  await fetch(`${server.url}api/closure?path=${base}`) // the closure computed once, as `b3 ui ROOT` does at start
  page = await browserTimes(server.url, [
    ["treemap by added size", `/sizes/${base}`, "b3-sizes-drawn"],
    ["treemap by NAR size", `/sizes/${base}?mode=nar`, "b3-sizes-drawn"],
    ["sunburst", `/sizes/${base}?chart=sunburst`, "b3-sizes-drawn"],
    ["dependency graph", `/graph/${base}`, "b3-graph-drawn"]
  ])
} finally {
  server.stop()
}

// How busy the machine is: a plain loop's time grows with the load (compare runs by it).
const loopStarted = performance.now()
let sum = 0
for (let i = 0; i < 3e8; i++) sum += i & 7
const loop = performance.now() - loopStarted
const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")
console.log(`closure of ${closure.count} paths; load average ${load} on ${(await import("node:os")).cpus().length} cores; reference loop ${loop.toFixed(0)} ms${sum > 0 ? "" : "."}\n`)
console.log("| endpoint | latency | body |\n|---|---|---|")
console.log(closure.rows.join("\n"))
console.log("\n| view (closure computed, page not cached) | first contentful paint | drawn |\n|---|---|---|")
console.log(page.join("\n"))
