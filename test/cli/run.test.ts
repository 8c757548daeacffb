/**
 * `b3 run PIPELINE.ts`: the pipeline gets the --store and --cache stores as services, its result is
 * printed (as JSON with --json), its failure is one line with the exit code of its error, and
 * Ctrl-C interrupts it so its finalizers run. The pipelines here live outside the package, so
 * their `import … from "b3"` / `"effect"` go through the runner's fallback resolution.
 */
import { afterAll, describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3, b3Bin, runB3 } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

const pipeline = (name: string, source: string) => {
  const file = join(scratch, name)
  writeFileSync(file, source)
  return file
}

const oneLineError = (result: { stderr: string }, pattern: RegExp) => {
  expect(result.stderr).toMatch(/^b3: [^\n]+\n$/)
  expect(result.stderr).toMatch(pattern)
}

/** Adds a text to --store, copies it to --cache, and returns what it did; its arguments are echoed. */
const pushText = pipeline("push-text.ts", `
import { Effect } from "effect"
import { Cache, copyPaths, requireWrite, StorePath, StoreRead, StoreWrite } from "b3"
export default (args: ReadonlyArray<string>) => Effect.gen(function*() {
  const read = yield* StoreRead
  const info = yield* (yield* StoreWrite).addText("note.txt", args.join(" "))
  const cache = yield* Cache
  const result = yield* copyPaths(read, { read: cache.read, write: yield* requireWrite(cache) }, [info.path])
  yield* Effect.log("pushed", StorePath.print(info.path, read.storeDir))
  return { path: StorePath.print(info.path, read.storeDir), copied: result.copied.length, args, argv: process.argv.slice(2) }
})
`)

/** Fails with the b3 error its first argument names. */
const failWith = pipeline("fail.ts", `
import { Effect } from "effect"
import { BuildFailed, HashMismatch, PathNotValid, StoreBuild, StoreRead } from "b3"
export default (args: ReadonlyArray<string>) => Effect.gen(function*() {
  switch (args[0]) {
    case "not-found": return yield* new PathNotValid({ path: "/nix/store/00000000000000000000000000000000-x", store: "memory://" })
    case "mismatch": return yield* new HashMismatch({ path: "/nix/store/00000000000000000000000000000000-x", what: "NAR hash", expected: "sha256-a", actual: "sha256-b" })
    case "build": return yield* new BuildFailed({ drvPath: "/nix/store/00000000000000000000000000000000-x.drv", reason: "builder failed with exit code 1", logTail: "" })
    case "needs-build": return yield* StoreBuild
    case "defect": return yield* Effect.die(new Error("a bug in the pipeline"))
  }
  return (yield* StoreRead).uri
})
`)

describe("b3 run", () => {
  it("gives the pipeline --store and --cache, passes the arguments after --, and prints its result", () => {
    const cache = `file://${join(scratch, "cache")}`
    const text = runB3(["run", pushText, "--store", "memory://", "--cache", cache, "--", "hello", "--not-a-flag"])
    expect(text.status).toBe(0)
    const result = JSON.parse(text.stdout) as { path: string; copied: number; args: Array<string>; argv: Array<string> }
    expect(result).toMatchObject({ copied: 1, args: ["hello", "--not-a-flag"], argv: ["hello", "--not-a-flag"] })
    expect(text.stderr).toBe(`pushed ${result.path}\n`)
    // The path is now in the cache; --json prints one line, --quiet drops the log.
    expect(b3(["path-info", "--store", cache, result.path])).toBe(result.path)
    const json = runB3(["run", "--json", "--quiet", pushText, "--store", "memory://", "--cache", cache, "--", "hello", "--not-a-flag"])
    expect(json.stdout.trim().split("\n")).toHaveLength(1)
    expect(JSON.parse(json.stdout)).toEqual({ ...result, copied: 0 })
    expect(json.stderr).toBe("")
  })

  it("prints a string result as it is, and nothing for no result", () => {
    expect(runB3(["run", failWith, "--store", "memory://"]).stdout).toBe("memory://\n")
    const none = pipeline("none.ts", `import { Effect } from "effect"\nexport default Effect.void\n`)
    expect(runB3(["run", none, "--store", "memory://"])).toMatchObject({ status: 0, stdout: "", stderr: "" })
    expect(runB3(["run", "--json", none, "--store", "memory://"]).stdout).toBe("null\n")
  })

  it("runs from the library bundle (dist/lib), sharing one copy of each module of b3 and Effect with the pipeline", () => {
    const shared = pipeline("shared.ts", `
import { Effect, Stream } from "effect"
import * as StreamModule from "effect/Stream"
import { Command } from "effect/cli"
import * as CommandModule from "effect/cli/Command"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { NodeServices as NodeServicesNs } from "@effect/platform-node"
import { StoreRead } from "b3"
import { StoreRead as PluginStoreRead } from "b3/plugin"
import { derivation } from "b3/derivation"
import { StorePath } from "b3"
import { StorePath as PluginStorePath } from "b3/plugin"
export default Effect.gen(function*() {
  const read = yield* StoreRead
  return {
    resolved: import.meta.resolve("b3"),
    same: [Stream.make === StreamModule.make, Command.make === CommandModule.make, NodeServices.layer === NodeServicesNs.layer,
      StoreRead === PluginStoreRead, StorePath.print === PluginStorePath.print && typeof derivation === "function", typeof Effect.void === "object"],
    uri: read.uri
  }
})
`)
    const result = runB3(["run", "--json", shared, "--store", "memory://"])
    expect(result.stderr).toBe("")
    expect(JSON.parse(result.stdout)).toEqual({
      resolved: expect.stringMatching(/\/dist\/lib\/b3\.mjs$/), same: [true, true, true, true, true, true], uri: "memory://"
    })
  })

  it("exits with the code of the pipeline's error, with one line on stderr", () => {
    const cases: Array<[string, number, RegExp]> = [
      ["not-found", 3, /is not valid in store memory:\/\//],
      ["mismatch", 4, /sha256-a/],
      ["build", 5, /builder failed with exit code 1/],
      ["needs-build", 2, /the pipeline needs StoreBuild, but the store 'memory:\/\/' cannot build \(pass a local store as --store\)/],
      ["defect", 1, /a bug in the pipeline/]
    ]
    for (const [name, code, message] of cases) {
      const result = runB3(["run", failWith, "--store", "memory://", "--", name])
      expect(result.status, name).toBe(code)
      oneLineError(result, message)
    }
    // --verbose adds the whole cause of a crash (a defect), for a bug report.
    expect(runB3(["run", "--verbose", failWith, "--store", "memory://", "--", "defect"]).stderr).toMatch(/a bug in the pipeline[\s\S]*\n\s+at /)
  })

  it("says what to do for bad arguments: missing file, not a program, no --cache, unknown store", () => {
    const missing = runB3(["run", join(scratch, "nope.ts"), "--store", "memory://"])
    expect(missing.status).toBe(3)
    oneLineError(missing, /nope\.ts' does not exist/)
    const notProgram = pipeline("not-a-program.ts", "export default 42\n")
    const bad = runB3(["run", notProgram, "--store", "memory://"])
    expect(bad.status).toBe(2)
    oneLineError(bad, /its default export is not an Effect program \(export default Effect\.gen/)
    const broken = pipeline("broken.ts", "import { Nothing } from \"b3\"\nexport default Nothing\n")
    const brokenRun = runB3(["run", broken, "--store", "memory://"])
    expect(brokenRun.status).toBe(2)
    oneLineError(brokenRun, /loading it failed: .*Nothing/)
    const noCache = runB3(["run", pushText, "--store", "memory://"])
    expect(noCache.status).toBe(2)
    oneLineError(noCache, /the pipeline needs Cache, but no cache was given \(pass --cache URI\)/)
    const scheme = runB3(["run", pushText, "--store", "ftp://example"])
    expect(scheme.status).toBe(2)
    oneLineError(scheme, /unknown store type 'ftp' \(known: .*file.*\)/)
  })

  it("Ctrl-C interrupts the pipeline: its finalizers run and b3 exits 130", async () => {
    const marker = join(scratch, "finalized")
    const waits = pipeline("waits.ts", `
import { Effect } from "effect"
import { writeFileSync } from "node:fs"
export default Effect.gen(function*() {
  yield* Effect.addFinalizer(() => Effect.sync(() => writeFileSync(${JSON.stringify(marker)}, "closed")))
  yield* Effect.log("ready")
  return yield* Effect.never
}).pipe(Effect.scoped)
`)
    const child = spawn(b3Bin, ["run", waits, "--store", "memory://"], { stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    await new Promise<void>((resolve) => child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
      if (stderr.includes("ready\n")) resolve()
    }))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    expect(existsSync(marker)).toBe(true)
  })
})
