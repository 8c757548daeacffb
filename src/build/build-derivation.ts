/**
 * Building one derivation whose inputs are all valid in the store: its input closure is made
 * visible in the `Sandbox`, the builder runs with its log going to the `BuildHost`, and the outputs
 * are hashed, scanned, checked and registered through the host in one step.
 */
import { cpus } from "node:os"
import { Effect, Result } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as StorePath from "../core/store-path.ts"
import { BuildHost } from "../services/build-host.ts"
import { computeClosure } from "../services/closure.ts"
import { Sandbox } from "../services/sandbox.ts"
import { BuildFailed, type BuildError } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import type { StoreRead } from "../services/store-read.ts"
import { outputInfos } from "./output-info.ts"

export interface DerivationBuild {
  readonly drvPath: StorePath.StorePath
  readonly drv: Derivation.Derivation
  /** Output name → store path, for this derivation. */
  readonly outputs: Readonly<Record<string, StorePath.StorePath>>
  /** The store paths of the inputs it uses: its sources and the used outputs of its input derivations. */
  readonly inputs: ReadonlyArray<StorePath.StorePath>
  readonly cores?: number | undefined
  readonly timeoutSeconds?: number | undefined
  readonly maxSilentSeconds?: number | undefined
  readonly onLog?: ((chunk: Uint8Array) => void) | undefined
}

/** Builds the derivation and registers its outputs. */
export const buildDerivation = (build: DerivationBuild): Effect.Effect<void, BuildError | StoreError, StoreRead | BuildHost | Sandbox> =>
  Effect.scoped(Effect.gen(function*() {
    const host = yield* BuildHost
    const sandbox = yield* Sandbox
    const { drv } = build
    const storeDir = host.storeDir
    const drvPath = StorePath.print(build.drvPath, storeDir)
    const closure = yield* computeClosure(build.inputs)
    yield* host.addTempRoots([build.drvPath, ...closure])
    const attrs = yield* Effect.fromResult(Result.mapError(
      Derivation.structuredAttrsFiles(drv),
      (e) => new BuildFailed({ drvPath, reason: e.message, logTail: "" })))
    const log = yield* host.openLog(drvPath)
    const result = yield* sandbox.run({
      storeDir,
      realStoreDir: host.realStoreDir,
      drvPath: build.drvPath,
      drvName: drv.name,
      builder: drv.builder,
      args: drv.args,
      env: Object.fromEntries(drv.env),
      inputPaths: closure,
      outputPaths: Object.values(build.outputs),
      fixedOutput: [...drv.outputs.values()].some((o) => o._tag === "Fixed"),
      structuredAttrs: attrs ? { json: attrs.json, sh: attrs.shell } : undefined,
      platform: drv.system,
      cores: build.cores ?? cpus().length,
      timeoutSeconds: build.timeoutSeconds || undefined,
      maxSilentSeconds: build.maxSilentSeconds || undefined,
      onLog: (chunk) => { log.write(chunk); build.onLog?.(chunk) }
    })
    const built = yield* outputInfos({ drvPath: build.drvPath, drv, storeDir, outputs: build.outputs, built: result.outputs, inputClosure: closure })
    yield* host.registerBuilt(built)
  }))
