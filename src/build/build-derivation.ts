/**
 * Building one derivation whose inputs are all valid in a local store: its input closure is made
 * visible in a sandbox like Nix's, the builder runs with its log written to the store's log dir,
 * and the outputs are canonicalised, hashed, scanned, checked and registered in one transaction.
 */
import { cpus } from "node:os"
import { Effect, Result } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as StorePath from "../core/store-path.ts"
import type { LocalStore } from "../layers/local/local-store.ts"
import { computeClosure } from "../services/closure.ts"
import { BuildFailed, type BuildError } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { openBuildLog } from "./build-log.ts"
import { outputInfos } from "./output-info.ts"
import { canonicalise, runInSandbox, type BuildUser, type SandboxError } from "../layers/sandbox/index.ts"
import { withoutTail } from "../layers/sandbox/errors.ts"

export interface DerivationBuild {
  readonly store: LocalStore
  readonly drvPath: string
  readonly drv: Derivation.Derivation
  /** Output name → store path, for this derivation. */
  readonly outputPaths: Readonly<Record<string, string>>
  /** The store paths of the inputs it uses: its sources and the used outputs of its input derivations. */
  readonly inputs: ReadonlyArray<string>
  readonly cores?: number | undefined
  readonly timeoutSeconds?: number | undefined
  readonly maxSilentSeconds?: number | undefined
  readonly buildUser?: BuildUser | undefined
  readonly onLog?: ((chunk: Uint8Array) => void) | undefined
}

/** The platforms this machine builds for (x86-64 Linux, and i686 through the personality syscall). */
const supportedSystems = ["x86_64-linux", "i686-linux"]

/** A sandbox failure as the build failure a user sees (the message without the log, which comes separately). */
const fromSandboxError = (drvPath: string) => (e: SandboxError): BuildFailed => {
  return new BuildFailed({ drvPath, reason: withoutTail(e.message), logTail: "logTail" in e ? e.logTail : "" })
}

const parsePaths = (paths: ReadonlyArray<string>, storeDir: string, drvPath: string) => {
  const parsed: Array<StorePath.StorePath> = []
  for (const path of paths) {
    const result = StorePath.parse(path, storeDir)
    if (Result.isFailure(result)) return Result.fail(new BuildFailed({ drvPath, reason: result.failure.message, logTail: "" }))
    parsed.push(result.success)
  }
  return Result.succeed(parsed)
}

/** Builds the derivation and registers its outputs; gives output name → path. */
export const buildDerivation = (build: DerivationBuild): Effect.Effect<Readonly<Record<string, string>>, BuildError | StoreError> =>
  Effect.scoped(Effect.gen(function*() {
    const { store, drvPath, drv } = build
    if (!supportedSystems.includes(drv.system)) {
      return yield* new BuildFailed({
        drvPath, logTail: "",
        reason: `a '${drv.system}' is required to build it, but this machine is a '${supportedSystems.join("' or '")}'`
      })
    }
    const storeDir = store.layout.storeDir
    const inputs = yield* Effect.fromResult(parsePaths(build.inputs, storeDir, drvPath))
    const closure = (yield* computeClosure(store.read, inputs)).map((p) => StorePath.print(p, storeDir))
    const outputPaths = Object.values(build.outputPaths)
    const attrs = yield* Effect.fromResult(Result.mapError(
      Derivation.structuredAttrsFiles(drv),
      (e) => new BuildFailed({ drvPath, reason: e.message, logTail: "" })))
    const log = yield* openBuildLog(store.layout.logDir, drvPath)
    const fixedOutput = [...drv.outputs.values()].some((o) => o._tag === "Fixed")

    const result = yield* runInSandbox({
      storeDir,
      realStoreDir: store.layout.realStoreDir,
      drvName: drv.name,
      builder: drv.builder,
      args: drv.args,
      env: Object.fromEntries(drv.env),
      inputPaths: closure,
      outputPaths,
      fixedOutput,
      ...(attrs ? { structuredAttrs: { json: attrs.json, sh: attrs.shell } } : {}),
      platform: drv.system,
      cores: build.cores ?? cpus().length,
      ...(build.timeoutSeconds ? { timeoutSeconds: build.timeoutSeconds } : {}),
      ...(build.maxSilentSeconds ? { maxSilentSeconds: build.maxSilentSeconds } : {}),
      ...(build.buildUser ? { buildUser: build.buildUser } : {}),
      onLog: (chunk) => { log.write(chunk); build.onLog?.(chunk) }
    }).pipe(Effect.mapError(fromSandboxError(drvPath)))

    for (const physical of Object.values(result.outputs)) {
      yield* canonicalise(physical).pipe(Effect.mapError((e) => new BuildFailed({ drvPath, reason: e.message, logTail: result.logTail })))
    }
    const built = yield* outputInfos({ drvPath, drv, storeDir, outputPaths: build.outputPaths, physical: result.outputs, inputClosure: closure })
    yield* store.addBuilt(built)
    return build.outputPaths
  }))
