/**
 * `b3 run …` without the CLI process in front: bin/b3 starts the pipeline runner itself, from the
 * runner's startup snapshot (dist/run.blob) or the library bundle (dist/lib/run-pipeline.mjs), and the
 * runner reads the command line (src/cli/run-argv.ts) as the CLI would; one it does not know goes to
 * the CLI. Each of these must behave exactly as the CLI's own `b3 run` (dist/b3.mjs, which starts the
 * runner as a child): same output, same one-line errors, same exit codes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseRunArgv } from "../../src/cli/run-argv.ts"
import { b3, b3Bin } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))
const node = join(root, "node_modules/.bin/node")
const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

beforeAll(() => {
  b3(["--version"]) // builds the bundles and the blobs if the sources changed
})

interface Ran { readonly status: number | null; readonly stdout: string; readonly stderr: string; readonly pid: number }

const spawn = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv): Ran => {
  const result = spawnSync(command, args, { cwd, env, encoding: "utf8" })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, pid: result.pid }
}

/** The ways `b3 ARGS…` can run: as bin/b3 does, and each route by itself. */
const routes = {
  launcher: (args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) => spawn(b3Bin, args, cwd, env),
  snapshot: (args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) =>
    spawn(node, ["--conditions=b3-source", "--snapshot-blob", join(root, "dist/run.blob"), "--", "--argv", ...args], cwd, env),
  bundle: (args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) =>
    spawn(node, ["--conditions=b3-source", join(root, "dist/lib/run-pipeline.mjs"), "--argv", ...args], cwd, env),
  cli: (args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) =>
    spawn(node, ["--conditions=b3-source", join(root, "dist/b3.mjs"), ...args], cwd, env)
}

const file = (name: string, text: string) => {
  const path = join(scratch, name)
  mkdirSync(join(path, ".."), { recursive: true })
  writeFileSync(path, text)
  return path
}

/** Echoes what it was given: its arguments, the stores' URIs, B3_QUIET; logs at three levels. */
const echo = file("echo.ts", `
import { Effect, Option } from "effect"
import { Cache, StoreRead } from "b3"
export default (args: ReadonlyArray<string>) => Effect.gen(function*() {
  const store = yield* StoreRead
  const cache = yield* Effect.serviceOption(Cache)
  yield* Effect.logDebug("debug line")
  yield* Effect.log("info line")
  yield* Effect.logWarning("warning line")
  return { args, argv: process.argv.slice(2), store: store.uri, cache: Option.isSome(cache) ? cache.value.read.uri : null, quiet: process.env.B3_QUIET ?? null }
})
`)

describe("b3 run from the launcher", () => {
  it("reads the command lines of b3 run as the CLI does, and leaves the rest to it", () => {
    const p = "p.ts"
    const base = { store: undefined, cache: undefined, json: false, quiet: false, verbose: false, args: [] }
    expect(parseRunArgv(["run", p])).toEqual({ ...base, pipeline: p })
    expect(parseRunArgv(["--json", "run", p, "--store", "memory://", "a", "-", "-5", "--", "--json", "--"]))
      .toEqual({ ...base, pipeline: p, store: "memory://", json: true, args: ["a", "-", "-5", "--json", "--"] })
    expect(parseRunArgv(["-q", "--log-level", "debug", "run", "--verbose", "--cache=file:///c", "--store=", p]))
      .toEqual({ ...base, pipeline: p, store: "", cache: "file:///c", quiet: true })
    expect(parseRunArgv(["run", "--verbose", "--log-level=none", "--", p, "--store", "x"]))
      .toEqual({ ...base, pipeline: p, verbose: true, args: ["--store", "x"] })
    // the CLI's: not run, help, version, completions, unknown or repeated flags, a boolean with a value,
    // a flag without its value, run's flags before run, no pipeline
    for (const argv of [["store", "add", p], ["run"], ["run", "--", ], ["run", p, "--help"], ["run", "-h", p], ["run", p, "-v"],
      ["run", p, "--version"], ["--completions", "bash", "run", p], ["run", p, "--wizard"], ["run", p, "--bogus"], ["run", p, "-qv"],
      ["run", p, "--json", "--json"], ["run", "-q", p, "--quiet"], ["run", "--json", "false", p], ["run", p, "--quiet", "yes"],
      ["run", p, "--json=true"], ["run", p, "--no-json"], ["run", p, "--store"], ["run", p, "--store", "--json"],
      ["run", p, "--store", "a", "--store=b"], ["--store", "memory://", "run", p], ["run", p, "--log-level", "loud"],
      ["run", p, "--log-level"], ["--log-level", "run", p]]) {
      expect(parseRunArgv(argv), argv.join(" ")).toBeUndefined()
    }
  })

  it("runs the pipeline in the process it starts, from the runner's snapshot", () => {
    expect(existsSync(join(root, "dist/run.blob"))).toBe(true)
    expect(statSync(join(root, "dist/run.blob")).mtimeMs).toBeGreaterThanOrEqual(statSync(join(root, "dist/b3.mjs")).mtimeMs)
    const pid = file("pid.ts", `import { Effect } from "effect"\nexport default Effect.sync(() => process.pid)\n`)
    const launched = routes.launcher(["run", pid, "--store", "memory://"], scratch, process.env)
    expect(launched.stderr).toBe("")
    expect(Number(launched.stdout)).toBe(launched.pid)
    // the CLI's route runs it in a child of its own
    const viaCli = routes.cli(["run", pid, "--store", "memory://"], scratch, process.env)
    expect(viaCli.status).toBe(0)
    expect(Number(viaCli.stdout)).not.toBe(viaCli.pid)
  })

  it("gives the same output, errors and exit codes as the CLI's b3 run, whichever way the runner starts", () => {
    const home = join(scratch, "home")
    const project = join(scratch, "project")
    for (const dir of [join(home, ".config/b3"), project]) mkdirSync(dir, { recursive: true })
    writeFileSync(join(home, ".config/b3/config.json"), JSON.stringify({ store: `file://${join(scratch, "home-cache")}` }))
    writeFileSync(join(project, "b3.json"), JSON.stringify({ store: `file://${join(scratch, "cwd-cache")}` }))
    const env = { PATH: process.env.PATH ?? "", HOME: home }
    const cases: Array<[ReadonlyArray<string>, string, NodeJS.ProcessEnv]> = [
      [["run", echo, "--store", "memory://", "a", "b"], scratch, env],
      [["--json", "run", echo, "--cache", `file://${join(scratch, "cache")}`, "--store=memory://", "--", "-x", "--json"], scratch, env],
      [["run", "-q", echo, "--verbose", "--store", "memory://"], scratch, env],
      [["run", "--verbose", echo, "--log-level", "error", "--store", "memory://"], scratch, env],
      [["run", echo], scratch, env], // the store of ~/.config/b3/config.json
      [["run", echo, "--json"], project, env], // of ./b3.json
      [["run", echo, "--json"], project, { ...env, B3_STORE: `file://${join(scratch, "env-cache")}` }],
      [["run", echo], scratch, { ...env, HOME: scratch }], // no store anywhere: one line, exit 2
      [["run", echo, "--store", "ftp://example"], scratch, env],
      [["run", echo, "--store", "memory://?bogus=1"], scratch, env],
      [["run", echo, "--store", "memory://"], scratch, { ...env, B3_PLUGINS: "./no-such-plugin.ts" }],
      [["run", "missing.ts", "--store", "memory://"], scratch, env],
      [["run", echo, "--store", "memory://", "--bogus"], scratch, env],
      [["run", "--json", "false", echo, "--store", "memory://"], scratch, env],
      [["run", echo, "--store", "a", "--store", "b"], scratch, env],
      [["run"], scratch, env],
      [["run", "--help"], scratch, env]
    ]
    // the store comes from the run's configuration: ./b3.json over ~/.config/b3/config.json, $B3_STORE over both
    const storeOf = (cwd: string, caseEnv: NodeJS.ProcessEnv) => JSON.parse(routes.launcher(["run", "--json", echo], cwd, caseEnv).stdout).store
    expect(storeOf(scratch, env)).toBe(`file://${join(scratch, "home-cache")}`)
    expect(storeOf(project, env)).toBe(`file://${join(scratch, "cwd-cache")}`)
    expect(storeOf(project, { ...env, B3_STORE: `file://${join(scratch, "env-cache")}` })).toBe(`file://${join(scratch, "env-cache")}`)
    for (const [args, cwd, caseEnv] of cases) {
      const name = `b3 ${args.join(" ")}`
      const expected = routes.cli(args, cwd, caseEnv)
      expect(expected.stdout + expected.stderr, name).not.toBe("")
      for (const [route, run] of Object.entries(routes)) {
        if (route === "cli") continue
        const result = run(args, cwd, caseEnv)
        expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }, `${name} (${route})`)
          .toEqual({ status: expected.status, stdout: expected.stdout, stderr: expected.stderr })
      }
    }
  }, 120_000)

  it("loads plugins named in the configuration, which share the runner's b3 and Effect", () => {
    const kv = join(root, "examples/kv-plugin/index.ts")
    const pipeline = file("kv.ts", `
import { Effect } from "effect"
import { StorePath, StoreRead, StoreWrite } from "b3"
export default Effect.gen(function*() {
  const info = yield* (yield* StoreWrite).addText("kv.txt", "in a kv store\\n")
  const read = yield* StoreRead
  return [read.uri.split(":")[0], StorePath.print(info.path, read.storeDir), String((yield* read.queryPathInfo(info.path)).narSize)]
})
`)
    const store = `kv://${join(scratch, "kv.sqlite")}`
    const env = { ...process.env, B3_PLUGINS: kv }
    const expected = routes.cli(["run", pipeline, "--store", store], scratch, env)
    expect(expected.stderr).toBe("")
    expect(expected.stdout).toMatch(/^kv\n\/nix\/store\/[0-9a-z]{32}-kv\.txt\n\d+\n$/)
    for (const route of ["launcher", "snapshot", "bundle"] as const) {
      expect(routes[route](["run", pipeline, "--store", store], scratch, env), route).toMatchObject({ status: 0, stdout: expected.stdout, stderr: "" })
    }
  })
})
