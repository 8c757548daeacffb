/**
 * The post-build-hook (Nix's `post-build-hook`): in the scheduler, on the in-memory store with a
 * fake sandbox whose `runHook` records what it is given and what the store holds at that moment;
 * and the host side (src/layers/sandbox/post-build-hook.ts) with real processes: environment,
 * merged output lines, Nix's failure messages, and a hook killed with its process group when its
 * scope closes. Against Nix itself: test/servers/daemon-post-build-hook.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Result } from "effect"
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Derivation from "../../src/core/derivation/index.ts"
import type { BuiltDerivation } from "../../src/core/derivation/builder-api.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { addDerivationClosure } from "../../src/build/derivation-closure.ts"
import { layer as builderLayer } from "../../src/build/builder.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { runHook } from "../../src/layers/sandbox/post-build-hook.ts"
import { queryRealisation } from "../../src/services/realisations.ts"
import type { HookSpec } from "../../src/services/sandbox.ts"
import { PostBuildHookFailed, StoreBuild, type BuildEvent, type BuildOptions } from "../../src/services/store-build.ts"
import type { StoreReadApi } from "../../src/services/store-read.ts"
import { StoreRead } from "../../src/services/store-read.ts"
import { StoreWrite } from "../../src/services/store-write.ts"
import { makeFakeSandbox, type FakeSandboxOptions } from "../support/fake-sandbox.ts"

const mk = (name: string, attrs: Record<string, Derivation.Value> = {}) => Result.getOrThrow(Derivation.derivation({
  name, system: "x86_64-linux", builder: "/bin/sh", args: ["-c", "true"], ...attrs
}))

interface HookRun {
  readonly drvPath: string
  readonly outPaths: string
  /** Whether each of OUT_PATHS was valid when the hook ran. */
  readonly valid: ReadonlyArray<boolean>
}

/** A fake sandbox whose hooks are recorded (and fail for the derivations named in `failFor`). */
const withHooks = <A, E>(
  failFor: ReadonlyArray<string>,
  program: (runs: Array<HookRun>) => Effect.Effect<A, E, StoreRead | StoreWrite | StoreBuild>,
  extra: FakeSandboxOptions = {}
) => Effect.gen(function*() {
  const runs: Array<HookRun> = []
  const hook = (spec: HookSpec, store: StoreReadApi) => Effect.gen(function*() {
    const outPaths = spec.env["OUT_PATHS"]!
    const paths = outPaths.split(" ").filter((p) => p !== "").map((p) => Result.getOrThrow(StorePath.parse(p, store.storeDir)))
    const valid = yield* Effect.orDie(Effect.forEach(paths, (p) => store.isValidPath(p)))
    runs.push({ drvPath: spec.env["DRV_PATH"]!, outPaths, valid })
    spec.onLine?.(`hook for ${spec.drvPath}`)
    if (failFor.some((name) => spec.drvPath.endsWith(`-${name}.drv`))) {
      return yield* new PostBuildHookFailed({ drvPath: spec.drvPath, program: spec.program, status: "failed with exit code 1" })
    }
  })
  const fake = yield* makeFakeSandbox({ ...extra, hook })
  const services = builderLayer.pipe(Layer.provide(fake.layer), Layer.provideMerge(MemoryStore.layer()))
  return yield* program(runs).pipe(Effect.provide(services))
})

const build = (roots: ReadonlyArray<BuiltDerivation>, options: BuildOptions = {}) => Effect.gen(function*() {
  const read = yield* StoreRead
  const drvPaths = yield* addDerivationClosure(yield* StoreWrite, read.storeDir, roots)
  return yield* (yield* StoreBuild).buildDerivations(drvPaths, options)
})

const hook = { program: "/hook" }

describe("the post-build-hook in the scheduler (memory store, fake sandbox)", () => {
  it.effect("runs after each build with its registered outputs (ordered by base name), not for valid outputs; its lines and events reach the caller", () =>
    withHooks([], (runs) => Effect.gen(function*() {
      const a = mk("a", { outputs: ["out", "dev", "lib"] })
      const b = mk("b", { a: a.outputs.dev! })
      const events: Array<BuildEvent> = []
      const lines: Array<string> = []
      yield* build([b], { postBuildHook: hook, onEvent: (e) => events.push(e), onHookLog: (drv, line) => lines.push(`${drv}: ${line}`) })
      const byBase = (paths: Readonly<Record<string, string>>) => Object.values(paths).sort((x, y) => {
        const bx = x.slice(x.lastIndexOf("/")), by = y.slice(y.lastIndexOf("/"))
        return bx < by ? -1 : 1
      }).join(" ")
      expect(runs).toEqual([
        { drvPath: a.drvPath, outPaths: byBase(a.outputPaths), valid: [true, true, true] },
        { drvPath: b.drvPath, outPaths: b.outputPaths.out!, valid: [true] }
      ])
      expect(lines).toEqual([`${a.drvPath}: hook for ${a.drvPath}`, `${b.drvPath}: hook for ${b.drvPath}`])
      const hookEvents = events.filter((e) => e.type.startsWith("post-build-hook") || e.type === "built").map((e) => `${e.type} ${"drvPath" in e ? e.drvPath : ""}`)
      expect(hookEvents).toEqual([
        `built ${a.drvPath}`, `post-build-hook ${a.drvPath}`, `post-build-hook-done ${a.drvPath}`,
        `built ${b.drvPath}`, `post-build-hook ${b.drvPath}`, `post-build-hook-done ${b.drvPath}`
      ])
      yield* build([b], { postBuildHook: hook })
      expect(runs.length).toBe(2)
    })))

  it.effect("a resolved derivation: once for the resolved one and once for the original, each after its realisations are recorded", () =>
    withHooks([], (runs) => Effect.gen(function*() {
      const a = mk("a", { __contentAddressed: true })
      const b = mk("b", { __contentAddressed: true, a })
      const events: Array<BuildEvent> = []
      const [result] = yield* build([b], { postBuildHook: hook, onEvent: (e) => events.push(e) })
      const resolved = events.find((e): e is Extract<BuildEvent, { type: "resolved" }> => e.type === "resolved")!.resolved
      const out = StorePath.print(result!.outputs.out!, (yield* StoreRead).storeDir)
      expect(runs.map((r) => [r.drvPath, r.valid])).toEqual([[a.drvPath, [true]], [resolved, [true]], [b.drvPath, [true]]])
      expect(runs[2]!.outPaths).toBe(out)
      // the original's realisation was there when its hook ran: the hook may copy the derivation's outputs by it
      const store = yield* StoreRead
      const hashes = Result.getOrThrow(Derivation.hashDerivationModulo(b.derivation, true, { storeDir: store.storeDir, lookup: (p) => p === a.drvPath ? a.derivation : undefined }))
      const r = yield* queryRealisation(store, { drvHash: hashes.hashes.get("out")!, outputName: "out" })
      expect(Option.map(r, (x) => StorePath.print(x.outPath, store.storeDir))).toEqual(Option.some(out))
    })))

  it.effect("a failed hook fails the build and stops everything, with keepGoing too; the built outputs stay valid", () =>
    withHooks(["a"], (runs) => Effect.gen(function*() {
      const a = mk("a")
      const slow = mk("slow")
      const error = yield* Effect.flip(build([a, slow], { postBuildHook: hook, keepGoing: true, maxJobs: 2 }))
      expect(error).toBeInstanceOf(PostBuildHookFailed)
      expect(error.message).toBe("program '/hook' failed with exit code 1")
      expect(runs.map((r) => r.drvPath)).toEqual([a.drvPath])
      expect(yield* (yield* StoreRead).isValidPath(Result.getOrThrow(StorePath.parse(a.outputPaths.out!)))).toBe(true)
    }), { hanging: ["slow"] }))

  it.effect("a sandbox that runs no host programs fails a build that asks for a hook", () =>
    Effect.gen(function*() {
      const fake = yield* makeFakeSandbox()
      const services = builderLayer.pipe(Layer.provide(fake.layer), Layer.provideMerge(MemoryStore.layer()))
      const error = yield* Effect.flip(build([mk("lone")], { postBuildHook: hook }).pipe(Effect.provide(services)))
      expect(error).toBeInstanceOf(PostBuildHookFailed)
      expect(error.message).toBe("program '/hook' cannot run: this builder runs no programs on the host")
      // without a hook, the same sandbox builds
      const ok = yield* Effect.exit(build([mk("lone2")]).pipe(Effect.provide(services)))
      expect(Exit.isSuccess(ok)).toBe(true)
    }))
})

describe("runHook: the hook as a host process", () => {
  const withScript = <A, E>(text: string, f: (path: string) => Effect.Effect<A, E>) => Effect.acquireUseRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(join(tmpdir(), "b3-hook-"))
      const path = join(dir, "hook.sh")
      writeFileSync(path, text)
      chmodSync(path, 0o755)
      return { dir, path }
    }),
    ({ path }) => f(path),
    ({ dir }) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))

  it.effect("gets DRV_PATH and OUT_PATHS over the host's environment, NIX_CONFIG only where the host has none; stdout and stderr as lines", () =>
    withScript("#!/bin/sh\necho \"drv=$DRV_PATH\"\necho \"outs=$OUT_PATHS\" >&2\necho \"config=$NIX_CONFIG\"\nprintf 'no newline'\n", (path) => Effect.gen(function*() {
      const lines: Array<string> = []
      const hadConfig = process.env["NIX_CONFIG"]
      delete process.env["NIX_CONFIG"]
      try {
        yield* Effect.scoped(runHook({ program: path, drvPath: "/s/x.drv", env: { DRV_PATH: "/s/x.drv", OUT_PATHS: "/s/a /s/b" }, defaultEnv: { NIX_CONFIG: "k = v" }, onLine: (l) => lines.push(l) }))
        expect(lines.sort()).toEqual(["config=k = v", "drv=/s/x.drv", "no newline", "outs=/s/a /s/b"])
        process.env["NIX_CONFIG"] = "mine = 1"
        lines.length = 0
        yield* Effect.scoped(runHook({ program: path, drvPath: "/s/x.drv", env: {}, defaultEnv: { NIX_CONFIG: "k = v" }, onLine: (l) => lines.push(l) }))
        expect(lines).toContain("config=mine = 1")
      } finally {
        if (hadConfig === undefined) delete process.env["NIX_CONFIG"]
        else process.env["NIX_CONFIG"] = hadConfig
      }
    })))

  it.effect("fails as Nix words it: an exit status, a signal, a program that does not exist", () =>
    withScript("#!/bin/sh\nif [ \"$MODE\" = signal ]; then kill -9 $$; fi\nexit 7\n", (path) => Effect.gen(function*() {
      const message = (env: Record<string, string>, program = path) =>
        Effect.flip(Effect.scoped(runHook({ program, drvPath: "/s/x.drv", env }))).pipe(Effect.map((e) => e.message))
      expect(yield* message({})).toBe(`program '${path}' failed with exit code 7`)
      expect(yield* message({ MODE: "signal" })).toBe(`program '${path}' failed due to signal 9`)
      const lines: Array<string> = []
      const missing = `${path}-missing`
      const e = yield* Effect.flip(Effect.scoped(runHook({ program: missing, drvPath: "/s/x.drv", env: {}, onLine: (l) => lines.push(l) })))
      expect(e.message).toBe(`program '${missing}' failed with exit code 1`)
      expect(lines).toEqual([`error: executing '${missing}': No such file or directory`])
    })))

  // the hook still running; and a hook that has exited, leaving a child that holds its output (Nix too reads to the end)
  for (const [what, script] of [["running", "#!/bin/sh\nsleep 600 &\necho \"pids $$ $!\"\nwait\n"], ["exited", "#!/bin/sh\nsleep 600 &\necho \"pids $$ $!\"\nexit 0\n"]] as const) {
    it.effect(`closing its scope early kills the hook (${what}) and what it started, and waits for them`, () =>
      withScript(script, (path) => Effect.gen(function*() {
        const started = yield* Deferred.make<ReadonlyArray<number>>()
        const fiber = yield* Effect.forkChild(Effect.scoped(runHook({
          program: path, drvPath: "/s/x.drv", env: {},
          onLine: (l) => { if (l.startsWith("pids ")) Deferred.doneUnsafe(started, Exit.succeed(l.slice(5).split(" ").map(Number))) }
        })))
        const pids = yield* Deferred.await(started)
        yield* Fiber.interrupt(fiber)
        // gone, or a zombie not yet reaped by its new parent
        const state = (pid: number) => { try { return readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[2] } catch { return "gone" } }
        expect(["gone", "Z"]).toContain(state(pids[0]!))
        expect(["gone", "Z"]).toContain(state(pids[1]!))
      })))
  }
})
