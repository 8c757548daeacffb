/**
 * The build farm end to end (`npm run test:farm`, also part of `npm test`): a real PostgreSQL,
 * s3rver as the shared cache, runners as separate `b3 farm runner` processes on 127.0.0.1, clients
 * as `b3 build --farm` processes. Graphs come from test/farm/graph.ts; each test salts its own so
 * that they share nothing.
 */
import { spawn, spawnSync } from "node:child_process"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { postgresBin } from "../support/postgres.ts"
import { graphModule, spawnB3, startFarm, type RunnerProcess, type TestFarm } from "./support.ts"

let farm: TestFarm

const psqlBin = postgresBin("psql")

/** Rows of a query on the farm's database, as arrays of strings. */
const query = (sql: string): Array<Array<string>> => {
  const out = spawnSync(psqlBin, [farm.url, "-At", "-F", "\t", "-c", sql], { encoding: "utf8" })
  if (out.status !== 0) throw new Error(`psql: ${out.stderr}`)
  return out.stdout.split("\n").filter((l) => l.length > 0).map((l) => l.split("\t"))
}

/**
 * b3 as a child process, awaited: the S3 proxy in front of s3rver runs in this process, so a
 * synchronous spawn (spawnSync) would block it and any b3 reaching the cache would wait forever.
 */
const b3 = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = farm.env) => spawnB3(args, env).result

const graphEnv = (vars: Record<string, string>) => ({ ...farm.env, B3_FARM_BUSYBOX: farm.busybox, ...vars })

/** The .drv paths of a graph, as `b3 build` writes them (read through the module's own API). */
const graphDrvs = async (vars: Record<string, string>): Promise<Array<{ drvPath: string; out: string }>> => {
  const child = spawn(join(process.cwd(), "node_modules/.bin/node"), ["--conditions=b3-source", "--input-type=module", "-e",
    `const m = await import(${JSON.stringify(graphModule)}); console.log(JSON.stringify(m.allDerivations().map((d) => ({ drvPath: d.drvPath, out: d.outputPaths.out }))))`],
  { env: graphEnv(vars), stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d: Buffer) => { stdout += d.toString() })
  child.stderr!.on("data", (d: Buffer) => { stderr += d.toString() })
  const status = await new Promise<number | null>((resolve) => child.on("close", resolve))
  if (status !== 0) throw new Error(stderr)
  return JSON.parse(stdout)
}

/** Build records per derivation: how many attempts ended how. */
const buildRecords = (drvs: ReadonlyArray<string>) => {
  const rows = query(`SELECT drv, status, COUNT(*) FROM farm_builds GROUP BY drv, status`)
  const wanted = new Set(drvs)
  const byDrv = new Map<string, Record<string, number>>()
  for (const [drv, status, n] of rows) {
    if (!wanted.has(drv!)) continue
    byDrv.set(drv!, { ...(byDrv.get(drv!) ?? {}), [status!]: Number(n) })
  }
  return byDrv
}

/**
 * Each derivation was built successfully exactly once: one attempt succeeded, or (a runner killed
 * between pushing the outputs and recording its success) an attempt was lost and the next one found
 * the outputs in the cache and was skipped without building.
 */
const expectBuiltOnce = (drvs: ReadonlyArray<string>) => {
  const records = buildRecords(drvs)
  const once = (r: Record<string, number> | undefined) =>
    r !== undefined && ((r.succeeded === 1 && !r.skipped) || (!r.succeeded && r.skipped === 1 && (r.lost ?? 0) > 0))
  const notOnce = drvs.filter((d) => !once(records.get(d)))
  expect(notOnce.map((d) => [d, records.get(d)])).toEqual([])
}

/** Every narinfo in the bucket names a NAR object of the size it says: nothing partial is visible. */
const expectCacheWhole = async () => {
  const objects = new Map<string, number>()
  let token: string | undefined
  do {
    const res = await fetch(`${farm.s3.directUrl()}/${farm.bucket}?list-type=2${token ? `&continuation-token=${encodeURIComponent(token)}` : ""}`)
    const xml = await res.text()
    for (const m of xml.matchAll(/<Key>([^<]+)<\/Key>.*?<Size>(\d+)<\/Size>/gs)) objects.set(m[1]!, Number(m[2]))
    token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? /<NextContinuationToken>([^<]+)</.exec(xml)?.[1] : undefined
  } while (token)
  const problems: Array<string> = []
  for (const key of objects.keys()) {
    if (!key.endsWith(".narinfo")) continue
    const text = await (await fetch(`${farm.s3.directUrl()}/${farm.bucket}/${key}`)).text()
    const url = /^URL: (.*)$/m.exec(text)?.[1]
    const size = Number(/^FileSize: (\d+)$/m.exec(text)?.[1])
    if (!url || objects.get(url) !== size) problems.push(`${key}: ${url} is ${objects.get(url ?? "")} bytes, narinfo says ${size}`)
  }
  expect(problems).toEqual([])
  expect(farm.s3.openUploads(farm.bucket)).toEqual([])
}

/** Resolves once the runners together have logged `count` finished builds from now on. */
const afterBuilds = (runners: ReadonlyArray<RunnerProcess>, count: number) => new Promise<void>((resolve) => {
  const start = runners.map((r) => r.lines.filter((l) => / built /.test(l)).length)
  const check = () => {
    const done = runners.reduce((n, r, i) => n + r.lines.filter((l) => / built /.test(l)).length - start[i]!, 0)
    if (done >= count) { for (const r of runners) r.child.stderr!.off("data", check); resolve() }
  }
  for (const r of runners) r.child.stderr!.on("data", check)
})

beforeAll(async () => {
  farm = await startFarm()
  await Promise.all([farm.startRunner("r1"), farm.startRunner("r2"), farm.startRunner("r3")])
}, 120_000)

afterAll(async () => { await farm?.close() })

/** A failed client's stderr with the runners' last log lines, for the assertion's message. */
const withRunnerLogs = (stderr: string) =>
  `${stderr}\n--- the runners' last lines ---\n${[...farm.runners.values()].map((r) => `${r.name}:\n${r.lines.slice(-20).join("\n")}`).join("\n")}`

describe("b3 build farm", () => {
  it("builds a 200-derivation graph on 3 runners with the NAR hashes of a local build", async () => {
    const vars = { B3_FARM_SALT: "equal" }
    const store = farm.clientStore("equal")
    const client = await spawnB3(["build", "--farm", farm.url, "--store", store, graphModule], graphEnv(vars)).result
    expect(client.status, withRunnerLogs(client.stderr)).toBe(0)
    const roots = client.stdout.trim().split("\n")
    expect(roots).toHaveLength(20)

    // the outputs were substituted into the client's store
    const substituted = await b3(["path-info", "--store", store, ...roots])
    expect(substituted.status, withRunnerLogs(substituted.stderr)).toBe(0)

    const local = farm.clientStore("equal-local")
    const built = await b3(["build", "--store", local, "--max-jobs", "2", graphModule], graphEnv(vars))
    expect(built.status, withRunnerLogs(built.stderr)).toBe(0)
    expect(built.stdout.trim().split("\n")).toEqual(roots)

    const drvs = await graphDrvs(vars)
    expect(drvs).toHaveLength(200)
    const outs = drvs.map((d) => d.out)
    const hashes = async (uri: string) => {
      const r = await b3(["--json", "path-info", "--store", uri, ...outs])
      expect(r.stderr).toBe("")
      return new Map((JSON.parse(r.stdout) as Array<{ path: string; narHash: string }>).map((i) => [i.path, i.narHash]))
    }
    const onFarm = await hashes(farm.cacheUri)
    const onLocal = await hashes(local)
    expect(onFarm.size).toBe(200)
    expect(Object.fromEntries(onFarm)).toEqual(Object.fromEntries(onLocal))
    expectBuiltOnce(drvs.map((d) => d.drvPath))
    // the builds were spread over the runners
    const perRunner = query(`SELECT runner, COUNT(*) FROM farm_builds WHERE status = 'succeeded' GROUP BY runner`)
    expect(perRunner.length).toBe(3)
  }, 600_000)

  it("finishes the graph when a runner is SIGKILLed mid-run: each derivation built once, nothing partial in the cache", async () => {
    const vars = { B3_FARM_SALT: "kill", B3_FARM_N: "60", B3_FARM_SLEEP: "0.5" }
    const runners = [...farm.runners.values()]
    const client = spawnB3(["build", "--farm", farm.url, "--store", farm.clientStore("kill"), graphModule], graphEnv(vars))
    await afterBuilds(runners, 8)
    const victim = farm.runners.get("r2")!
    victim.child.kill("SIGKILL")
    await victim.exited
    const result = await client.result
    expect(result.status, withRunnerLogs(result.stderr)).toBe(0)
    const drvs = (await graphDrvs(vars)).map((d) => d.drvPath)
    expectBuiltOnce(drvs)
    await expectCacheWhole()
    // r2's claimed jobs went back to the queue and were built elsewhere
    const lost = query(`SELECT COUNT(*) FROM farm_builds WHERE runner = 'r2' AND status IN ('running', 'lost')`)
    expect(Number(lost[0]![0])).toBeGreaterThan(0)
    await farm.startRunner("r2")
  }, 600_000)

  it("completes when a runner and the submitting client restart mid-run; the client re-attaches", async () => {
    const vars = { B3_FARM_SALT: "restart", B3_FARM_N: "60", B3_FARM_SLEEP: "0.5" }
    const store = farm.clientStore("restart")
    const first = spawnB3(["build", "--farm", farm.url, "--store", store, "--submission", "restart-1", graphModule], graphEnv(vars))
    await afterBuilds([...farm.runners.values()], 8)
    first.child.kill("SIGKILL")
    await first.result
    const r1 = farm.runners.get("r1")!
    r1.child.kill("SIGTERM")
    await r1.exited
    await farm.startRunner("r1")
    const status = await b3(["--json", "farm", "status", "--farm", farm.url])
    expect(status.status).toBe(0)
    expect((JSON.parse(status.stdout) as { runners: Array<{ id: string; state: string }> }).runners.filter((r) => r.state === "up").map((r) => r.id).sort()).toEqual(["r1", "r2", "r3"])
    const again = await spawnB3(["farm", "attach", "--farm", farm.url, "--store", store, "restart-1"], graphEnv(vars)).result
    expect(again.status, withRunnerLogs(again.stderr)).toBe(0)
    expect(again.stdout.trim().split("\n")).toHaveLength(20)
    expectBuiltOnce((await graphDrvs(vars)).map((d) => d.drvPath))
    await expectCacheWhole()
  }, 600_000)

  it("builds the derivations two submitters share once", async () => {
    const a = { B3_FARM_SALT: "overlap", B3_FARM_N: "60", B3_FARM_ROOTS: "0-12" }
    const b = { B3_FARM_SALT: "overlap", B3_FARM_N: "60", B3_FARM_ROOTS: "7-19" }
    const [ra, rb] = await Promise.all([
      spawnB3(["build", "--farm", farm.url, "--store", farm.clientStore("overlap-a"), graphModule], graphEnv(a)).result,
      spawnB3(["build", "--farm", farm.url, "--store", farm.clientStore("overlap-b"), graphModule], graphEnv(b)).result
    ])
    expect(ra.status, withRunnerLogs(ra.stderr)).toBe(0)
    expect(rb.status, withRunnerLogs(rb.stderr)).toBe(0)
    expect(ra.stdout.trim().split("\n")).toHaveLength(13)
    expect(rb.stdout.trim().split("\n")).toHaveLength(13)
    const drvs = (await graphDrvs(a)).map((d) => d.drvPath)
    // both graphs together cover all 60 derivations; each was built exactly once
    expectBuiltOnce(drvs)
  }, 600_000)

  it("routes derivations needing a feature only to the runner that offers it, and streams their logs", async () => {
    const r4 = await farm.startRunner("r4", { features: "kvm", maxJobs: 1 })
    try {
      const vars = { B3_FARM_SHAPE: "feature", B3_FARM_FEATURE: "kvm", B3_FARM_N: "3", B3_FARM_SALT: "route" }
      const result = await spawnB3(["build", "--farm", farm.url, "--print-build-logs", "--store", farm.clientStore("route"), graphModule], graphEnv(vars)).result
      expect(result.status, withRunnerLogs(result.stderr)).toBe(0)
      expect(result.stdout.trim().split("\n")).toHaveLength(3)
      // the builders' lines, streamed from the runner, prefixed with the derivation's name
      for (let i = 0; i < 3; i++) expect(result.stderr).toMatch(new RegExp(`needs-feature-${i}> hello from needs-feature-${i}`))
      const drvs = (await graphDrvs(vars)).map((d) => d.drvPath)
      const rows = query(`SELECT runner, status FROM farm_builds WHERE drv IN (${drvs.map((d) => `'${d}'`).join(", ")})`)
      expect(rows.map(([runner, status]) => `${runner} ${status}`)).toEqual(["r4 succeeded", "r4 succeeded", "r4 succeeded"])
    } finally {
      r4.child.kill("SIGTERM")
      await r4.exited
      farm.runners.delete("r4")
    }
  }, 300_000)

  it("fails at once, naming the feature, when a derivation needs a feature no runner has", async () => {
    const vars = { B3_FARM_SHAPE: "feature", B3_FARM_FEATURE: "gpu-9000", B3_FARM_SALT: "feature" }
    const result = await spawnB3(["build", "--farm", farm.url, "--store", farm.clientStore("feature"), graphModule], graphEnv(vars)).result
    expect(result.status).toBe(5)
    expect(result.stderr).toMatch(/requires system feature 'gpu-9000', which no runner for 'x86_64-linux' offers/)
    const status = JSON.parse((await b3(["--json", "farm", "status", "--farm", farm.url])).stdout) as { queue: Array<{ drvPath: string }> }
    expect(status.queue.filter((q) => q.drvPath.includes("needs-feature"))).toEqual([])
    // the runners build elsewhere: a post-build-hook is refused, not silently skipped
    const hooked = await spawnB3(["build", "--farm", farm.url, "--store", farm.clientStore("hook"), "--post-build-hook", "/bin/true", graphModule], graphEnv({ ...vars, B3_FARM_SALT: "hook" })).result
    expect(hooked.status).toBe(2)
    expect(hooked.stderr).toMatch(/--post-build-hook does not work with --farm/)
  }, 120_000)

  it("runs 60 one-second builds on 3 runners × 2 jobs (measured, not asserted)", async () => {
    const vars = { B3_FARM_SHAPE: "independent", B3_FARM_N: "60", B3_FARM_SLEEP: "1", B3_FARM_SALT: "timing" }
    const store = farm.clientStore("timing")
    const started = Date.now()
    const result = await spawnB3(["--json", "build", "--farm", farm.url, "--store", store, graphModule], graphEnv(vars)).result
    const wall = Date.now() - started
    expect(result.status, withRunnerLogs(result.stderr)).toBe(0)
    const events = result.stdout.split("\n").filter((l) => l.startsWith("{\"event\"")).map((l) => JSON.parse(l) as { event: string; at: number })
    const firstStart = Math.min(...events.filter((e) => e.event === "building").map((e) => e.at))
    const lastEnd = Math.max(...events.filter((e) => e.event === "built").map((e) => e.at))
    const rows = query(`SELECT runner, started_at, finished_at FROM farm_builds WHERE status = 'succeeded' AND drv LIKE '%-ind-%' AND started_at >= ${started}`)
    const busy = rows.reduce((n, [, s, f]) => n + Number(f) - Number(s), 0)
    const span = lastEnd - firstStart
    // overhead per derivation: slot time not spent in a build's own 1 s, over the 60 builds
    const perDrv = (span * 6 - 60_000) / 60
    const rss = [...farm.runners.values()].map((r) => `${r.name} ${Math.round(r.peakRssKb / 1024)} MiB`).join(", ")
    console.log(`farm timing: client wall ${wall} ms; first build start → last build end ${span} ms (ideal 10000); ` +
      `slot overhead ${perDrv.toFixed(0)} ms per derivation; build records sum ${busy} ms; load ${readLoad()}; peak RSS: ${rss}`)
    expect(rows.length).toBe(60)
  }, 600_000)
})

const readLoad = () => { try { return spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).stdout.trim().split(" ").slice(0, 3).join(" ") } catch { return "?" } }
