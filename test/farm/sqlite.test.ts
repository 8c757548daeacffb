/**
 * The farm's embedded mode: a SQLite file instead of PostgreSQL (nothing to install), a file://
 * cache, one runner process; built once with `b3 build --farm sqlite:…` and once through the
 * farm's `StoreBuild` layer in this process, swapped in for the local builder.
 */
import { spawn } from "node:child_process"
import { DatabaseSync } from "node:sqlite"
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { Effect, Layer, Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { b3Bin, runB3 } from "../support/b3.ts"
import { addBusybox } from "../support/busybox.ts"
import { freePort } from "../support/postgres.ts"
import { graphModule, spawnB3 } from "./support.ts"
import * as FarmBuild from "../../src/farm/store-build.ts"
import { writableStoreLayer } from "../../src/services/registry.ts"
import { registryLayer } from "../../src/compose/registry.ts"
import { StoreBuild } from "../../src/services/store-build.ts"
import { StoreRead } from "../../src/services/store-read.ts"
import { StoreWrite } from "../../src/services/store-write.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { resolveTarget } from "../../src/cli/build-targets.ts"

let scratch: string
let busybox: string
let runner: ReturnType<typeof spawn>
let url: string
const runnerLines: Array<string> = []
const lineWaiters: Array<{ match: RegExp; resolve: () => void }> = []
/** Resolves once the runner has printed `count` lines matching `match` (so far or from now on). */
const runnerPrinted = (match: RegExp, count: number) => new Promise<void>((resolve) => {
  let seen = runnerLines.filter((l) => match.test(l)).length
  if (seen >= count) return resolve()
  const waitOne = (): void => { lineWaiters.push({ match, resolve: () => { if (++seen >= count) resolve(); else waitOne() } }) }
  waitOne()
})

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "b3-farm-sqlite-"))
  busybox = addBusybox(join(scratch, "client"))
  url = `sqlite:${join(scratch, "farm.db")}`
  mkdirSync(join(scratch, "cache"))
  const gen = runB3(["key", "generate", "--name", "farm-1", "--secret", join(scratch, "farm.sec"), "--public", join(scratch, "farm.pub")])
  expect(gen.status).toBe(0)
  const port = await freePort()
  // the runner "loses" the wake-ups of its first 3 finished builds (a test hook): its reconciler must repair them
  runner = spawn(b3Bin, ["farm", "runner", "--farm", url, "--cache", `file://${join(scratch, "cache")}`, "--store", `local?root=${join(scratch, "runner")}`,
    "--listen", `127.0.0.1:${port}`, "--max-jobs", "2", "--secret-key", join(scratch, "farm.sec"), "--reconcile", "2"],
  { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, B3_FARM_TEST_DROP_WAKEUPS: "3" } })
  await new Promise<void>((resolve, reject) => {
    runner.once("exit", (code) => reject(new Error(`runner exited ${code}`)))
    createInterface({ input: runner.stderr! }).on("line", (line) => {
      runnerLines.push(line)
      for (const w of lineWaiters.splice(0)) { if (w.match.test(line)) w.resolve(); else lineWaiters.push(w) }
      if (/ ready: /.test(line)) resolve()
    })
  })
}, 120_000)

afterAll(async () => {
  if (runner && runner.exitCode === null) {
    const exited = new Promise((resolve) => runner.once("exit", resolve))
    runner.kill("SIGTERM")
    await exited
  }
  rmSync(scratch, { recursive: true, force: true })
})

describe("b3 farm on SQLite", () => {
  it("builds a graph with b3 build --farm sqlite:…", async () => {
    const env = { ...process.env, B3_FARM_BUSYBOX: busybox, B3_FARM_N: "40", B3_FARM_SALT: "sqlite-cli" }
    // awaited, not spawnSync: this process must go on reading the runner's output meanwhile
    const result = await spawnB3(["build", "--farm", url, "--store", `local?root=${join(scratch, "client")}`, graphModule], env).result
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout.trim().split("\n")).toHaveLength(20)
    const status = JSON.parse(runB3(["--json", "farm", "status", "--farm", url]).stdout) as { builds: { succeeded: number } }
    expect(status.builds.succeeded).toBe(40)
  }, 300_000)

  it("repairs wake-ups the workflow engine lost: every derivation's workflow records its result", async () => {
    // the graph above did not wait for those workflows (inputs are released in SQL); the reconciler wakes them again
    const dropped = runnerLines.flatMap((l) => /test: not waking the workflow of (\S+)/.exec(l)?.[1] ?? [])
    expect(dropped).toHaveLength(3)
    await runnerPrinted(/reconcile: woke the workflow of /, 3)
    for (const drv of dropped) await runnerPrinted(new RegExp(`recorded ${drv.replace(/[.]/g, "\\.")}: built`), 1)
    // and every workflow of the graph has recorded its result
    await runnerPrinted(/ recorded \S+: /, 40)
    const db = new DatabaseSync(join(scratch, "farm.db"), { readOnly: true })
    try {
      expect(db.prepare("SELECT drv FROM farm_derivations WHERE recorded = 0").all()).toEqual([])
    } finally { db.close() }
  }, 300_000)

  it("builds through the farm's StoreBuild layer, swapped for the local builder", async () => {
    process.env.B3_FARM_BUSYBOX = busybox
    process.env.B3_FARM_N = "20"
    process.env.B3_FARM_SALT = "sqlite-layer"
    const program = Effect.gen(function*() {
      const build = yield* StoreBuild
      const read = yield* StoreRead
      const drvPaths = yield* resolveTarget(graphModule)
      const results = yield* build.buildDerivations(drvPaths)
      return results.map((r) => ({ status: r.status, out: StorePath.print(r.outputs.out!, read.storeDir) }))
    })
    // the local store without its own builder: StoreBuild comes from the farm
    const stores = writableStoreLayer(`local?root=${join(scratch, "client")}`).pipe(Layer.provide(registryLayer))
    const results = await Effect.runPromise(program.pipe(Effect.provide(FarmBuild.layer(url).pipe(Layer.provideMerge(stores)))))
    expect(results).toHaveLength(20)
    expect(results.every((r) => r.status === "built")).toBe(true)
    // the outputs are in the local store, with the farm's signature
    const info = runB3(["--json", "path-info", "--store", `local?root=${join(scratch, "client")}`, results[0]!.out])
    expect(info.status, info.stderr).toBe(0)
    const pub = readFileSync(join(scratch, "farm.pub"), "utf8").trim()
    expect(JSON.stringify(JSON.parse(info.stdout))).toContain(pub.slice(0, pub.indexOf(":")))
    void Result
  }, 300_000)
})
