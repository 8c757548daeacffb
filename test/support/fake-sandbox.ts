/**
 * A fake `Sandbox` for scheduler tests: no processes, no disk. Each "build" makes every output a
 * regular file naming the derivation and its inputs, records when it started and ended, checks
 * that every input is valid in the store at that moment, and can be told to fail or to block.
 */
import { Deferred, Effect, Layer, Result, Stream } from "effect"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import { Sandbox, type HookSpec, type SandboxSpec } from "../../src/services/sandbox.ts"
import { BuildFailed, type PostBuildHookFailed } from "../../src/services/store-build.ts"
import { StoreRead, type StoreReadApi } from "../../src/services/store-read.ts"

export interface FakeSandboxOptions {
  /** Derivation names whose builds fail. */
  readonly failing?: ReadonlyArray<string>
  /** Builds wait until this many run at once (or until `gateOpen` is completed), to observe concurrency without sleeping. */
  readonly gate?: number
  /** Derivation names whose builds never finish (until interrupted). */
  readonly hanging?: ReadonlyArray<string>
  /** Makes the fake run post-build-hooks (`runHook`): this is called instead of a program, with the store. */
  readonly hook?: (spec: HookSpec, store: StoreReadApi) => Effect.Effect<void, PostBuildHookFailed>
}

export interface FakeSandboxRecord {
  /** Derivation names in the order their builds started, and ended. */
  readonly started: Array<string>
  readonly ended: Array<string>
  /** Inputs that were not valid when a build started. */
  readonly missingInputs: Array<string>
  /** Most builds running at once. */
  maxRunning: number
  running: number
  /** Builds whose scope was closed (finished, failed or interrupted). */
  readonly released: Array<string>
  /** Completed when a hanging build has started. */
  readonly hangingStarted: Deferred.Deferred<void>
}

/** What the fake's outputs contain: the derivation's name and its inputs' base names. */
export const fakeOutput = (spec: Pick<SandboxSpec, "drvName" | "inputPaths">): string =>
  [spec.drvName, ...spec.inputPaths.map(StorePath.baseName).sort()].join("\n") + "\n"

export const makeFakeSandbox = (options: FakeSandboxOptions = {}) => Effect.gen(function*() {
  const record: FakeSandboxRecord = {
    started: [], ended: [], missingInputs: [], maxRunning: 0, running: 0, released: [], hangingStarted: yield* Deferred.make<void>()
  }
  const gateOpen = yield* Deferred.make<void>()
  const layer = Layer.effect(Sandbox, Effect.gen(function*() {
    const store = yield* StoreRead
    return Sandbox.of({
      systems: ["x86_64-linux"],
      run: (spec) => Effect.gen(function*() {
        const drvPath = StorePath.print(spec.drvPath, spec.storeDir)
        yield* Effect.addFinalizer(() => Effect.sync(() => { record.running--; record.released.push(spec.drvName) }))
        record.running++
        record.maxRunning = Math.max(record.maxRunning, record.running)
        record.started.push(spec.drvName)
        const valid = new Set((yield* Effect.orDie(store.queryValidPaths(spec.inputPaths))).map(StorePath.baseName))
        for (const input of spec.inputPaths) if (!valid.has(StorePath.baseName(input))) record.missingInputs.push(StorePath.baseName(input))
        if (options.gate !== undefined) {
          if (record.running >= options.gate) yield* Deferred.succeed(gateOpen, undefined)
          yield* Deferred.await(gateOpen)
        }
        if (options.hanging?.includes(spec.drvName)) {
          yield* Deferred.succeed(record.hangingStarted, undefined)
          return yield* Effect.never
        }
        if (options.failing?.includes(spec.drvName)) {
          record.ended.push(spec.drvName)
          return yield* new BuildFailed({ drvPath, reason: "builder failed with exit code 1", logTail: "boom" })
        }
        const nar = Result.getOrThrow(Tree.toNar(Tree.regular(fakeOutput(spec))))
        const outputs = Object.fromEntries(spec.outputPaths.map((p) => [StorePath.print(p, spec.storeDir), { nar: Stream.make(nar) }]))
        spec.onLog?.(new TextEncoder().encode(`building ${spec.drvName}\n`))
        record.ended.push(spec.drvName)
        return { outputs, logTail: "" }
      }),
      ...(options.hook ? { runHook: (spec: HookSpec) => options.hook!(spec, store) } : {})
    })
  }))
  /** Lets gated builds go on even if fewer than `gate` could run at once (e.g. the last ones). */
  const openGate = Deferred.succeed(gateOpen, undefined)
  return { record, layer, openGate }
})
