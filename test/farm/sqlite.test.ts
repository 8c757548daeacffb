/**
 * The farm's embedded mode: a SQLite file instead of PostgreSQL (nothing to install), a file://
 * cache, one runner process; built once with `b3 build --farm sqlite:…` and once through the
 * farm's `StoreBuild` layer in this process, swapped in for the local builder.
 */
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { Effect, Layer, Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { b3Bin, runB3 } from "../support/b3.ts"
import { addBusybox } from "../support/busybox.ts"
import { freePort } from "../support/postgres.ts"
import { graphModule } from "./support.ts"
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

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "b3-farm-sqlite-"))
  busybox = addBusybox(join(scratch, "client"))
  url = `sqlite:${join(scratch, "farm.db")}`
  mkdirSync(join(scratch, "cache"))
  const gen = runB3(["key", "generate", "--name", "farm-1", "--secret", join(scratch, "farm.sec"), "--public", join(scratch, "farm.pub")])
  expect(gen.status).toBe(0)
  const port = await freePort()
  runner = spawn(b3Bin, ["farm", "runner", "--farm", url, "--cache", `file://${join(scratch, "cache")}`, "--store", `local?root=${join(scratch, "runner")}`,
    "--listen", `127.0.0.1:${port}`, "--max-jobs", "2", "--secret-key", join(scratch, "farm.sec")], { stdio: ["ignore", "ignore", "pipe"] })
  await new Promise<void>((resolve, reject) => {
    runner.once("exit", (code) => reject(new Error(`runner exited ${code}`)))
    createInterface({ input: runner.stderr! }).on("line", (line) => { if (/ ready: /.test(line)) resolve() })
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
  it("builds a graph with b3 build --farm sqlite:…", () => {
    const env = { ...process.env, B3_FARM_BUSYBOX: busybox, B3_FARM_N: "40", B3_FARM_SALT: "sqlite-cli" }
    const result = runB3(["build", "--farm", url, "--store", `local?root=${join(scratch, "client")}`, graphModule], { env })
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout.trim().split("\n")).toHaveLength(20)
    const status = JSON.parse(runB3(["--json", "farm", "status", "--farm", url]).stdout) as { builds: { succeeded: number } }
    expect(status.builds.succeeded).toBe(40)
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
