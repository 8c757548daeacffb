/**
 * The `Sandbox` service on bubblewrap: each build runs in a sandbox bit-identical to Nix 2.8's
 * (`runInSandbox`), and its outputs are put into canonical form before they are handed back. All
 * builds of one layer run as one build user, locked (shared, against Nix's user pool) on first use
 * and held until the layer's scope closes: one lock instead of one per build. Builds can share a
 * user because each runs in its own namespaces.
 */
import { Effect, Layer, Scope, Semaphore, Stream } from "effect"
import * as StorePath from "../../core/store-path.ts"
import { narFromPath } from "../../nar/fs/index.ts"
import type { BuiltOutput } from "../../services/build-host.ts"
import { Sandbox, type SandboxApi, type SandboxSpec } from "../../services/sandbox.ts"
import { BuildFailed } from "../../services/store-build.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import { ensureBuildUsers } from "./build-user.ts"
import { canonicalise } from "./canonicalise.ts"
import { withoutTail } from "./errors.ts"
import { checkHost } from "./host.ts"
import { runInSandbox } from "./run.ts"
import type { BuildUser } from "./spec.ts"
import { lockBuildUser } from "./user-lock.ts"
import { backgroundRemovals, buildParent, chrootPool, reclaimBuildDirectories, workDirectory } from "./work-dirs.ts"
import { runBuiltin } from "./builtins.ts"
import { runHook } from "./post-build-hook.ts"
import { existsSync } from "node:fs"

/** The platforms this machine builds for (x86-64 Linux, and i686 through the personality syscall). */
export const systems = ["x86_64-linux", "i686-linux"] as const

const failed = (drvPath: string, reason: string, logTail = "") => new BuildFailed({ drvPath, reason, logTail })

/** A canonical output on disk as the builder hands it on: its NAR, read from where it lies. */
const builtOutput = (physicalPath: string): BuiltOutput => ({
  physicalPath,
  nar: Stream.mapError(narFromPath(physicalPath), (e) => new StoreIoError({ store: "sandbox", operation: `read output ${physicalPath}`, reason: e.message }))
})

export const make: Effect.Effect<SandboxApi, never, Scope.Scope> = Effect.gen(function*() {
  const scope = yield* Effect.scope
  yield* reclaimBuildDirectories
  // finished builds' directories are removed while the next build runs; the layer's end waits for them
  yield* backgroundRemovals
  // and their chroot trees reused by the next builds alike
  yield* chrootPool
  let user: BuildUser | undefined
  const once = Semaphore.makeUnsafe(1)
  const buildUser = (drvPath: string) => once.withPermits(1)(Effect.suspend(() => user !== undefined ? Effect.succeed(user) : Effect.gen(function*() {
    const tools = yield* checkHost
    const locked = yield* lockBuildUser(yield* ensureBuildUsers(), tools, "b3").pipe(Effect.provideService(Scope.Scope, scope))
    user = { name: locked.name, uid: locked.uid, gid: locked.gid } // held: runs need not lock it again
    return user
  }).pipe(Effect.mapError((e) => failed(drvPath, e.message)))))

  const run = (spec: SandboxSpec) => Effect.gen(function*() {
    const drvPath = StorePath.print(spec.drvPath, spec.storeDir)
    if (spec.builder.startsWith("builtin:")) return yield* builtin(spec)
    if (!(systems as ReadonlyArray<string>).includes(spec.platform ?? "x86_64-linux")) {
      return yield* failed(drvPath, `a '${spec.platform}' is required to build it, but this machine is a '${systems.join("' or '")}'`)
    }
    const { drvPath: _, ...rest } = spec
    const result = yield* runInSandbox({
      ...rest,
      inputPaths: spec.inputPaths.map((p) => StorePath.print(p, spec.storeDir)),
      outputPaths: spec.outputPaths.map((p) => StorePath.print(p, spec.storeDir)),
      buildUser: yield* buildUser(drvPath)
    }).pipe(Effect.mapError((e) => failed(drvPath, withoutTail(e.message), "logTail" in e ? e.logTail : "")))
    const outputs: Record<string, BuiltOutput> = {}
    for (const [path, physical] of Object.entries(result.outputs)) {
      yield* canonicalise(physical).pipe(Effect.mapError((e) => failed(drvPath, e.message, result.logTail)))
      outputs[path] = builtOutput(physical)
    }
    return { outputs, logTail: result.logTail }
  })
  return { systems, run, runHook }
})

/**
 * A built-in builder (`builtin:fetchurl`, `builtin:buildenv`), run here rather than as a program:
 * its one output is made in a work directory of the scope, then put into canonical form.
 */
const builtin = (spec: SandboxSpec) => Effect.gen(function*() {
  const drvPath = StorePath.print(spec.drvPath, spec.storeDir)
  const out = spec.env["out"]
  const outPath = spec.outputPaths.find((p) => StorePath.print(p, spec.storeDir) === out)
  if (out === undefined || outPath === undefined || spec.outputPaths.length !== 1) {
    return yield* failed(drvPath, `builtin builder '${spec.builder}' makes exactly one output, 'out'`)
  }
  const parent = yield* buildParent(spec.drvName).pipe(Effect.mapError((e) => failed(drvPath, e.message)))
  const workDir = yield* workDirectory(parent, spec.drvName).pipe(Effect.mapError((e) => failed(drvPath, e.message)))
  const outputPhysical = `${workDir}/${StorePath.baseName(outPath)}`
  const lines: Array<string> = []
  const log = (line: string) => {
    lines.push(line)
    spec.onLog?.(new TextEncoder().encode(`${line}\n`))
  }
  yield* runBuiltin({
    builder: spec.builder, env: spec.env, storeDir: spec.storeDir, realStoreDir: spec.realStoreDir,
    outputPhysical, hashedMirrors: spec.hashedMirrors ?? [], log
  }).pipe(Effect.mapError((e) => {
    log(e.message)
    return failed(drvPath, `builder for '${drvPath}' failed with exit code 1`, lines.slice(-10).join("\n"))
  }))
  if (!existsSync(outputPhysical)) {
    return yield* failed(drvPath, `builder for '${drvPath}' failed to produce output path for output 'out' at '${out}'`)
  }
  yield* canonicalise(outputPhysical).pipe(Effect.mapError((e) => failed(drvPath, e.message)))
  return { outputs: { [out]: builtOutput(outputPhysical) }, logTail: lines.slice(-10).join("\n") }
})

/** Bubblewrap as the `Sandbox` service, for the lifetime of the layer. */
export const layer: Layer.Layer<Sandbox> = Layer.effect(Sandbox, make)
