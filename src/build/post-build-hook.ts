/**
 * Nix's `post-build-hook` (derivation-goal.cc `runPostBuildHook`) from the builder's side: after a
 * derivation was built and its outputs registered, the hook of the build options runs through the
 * `Sandbox` (which runs it on the host) with DRV_PATH and OUT_PATHS, its output passed to
 * `onHookLog`, announced by `post-build-hook` events.
 */
import { Effect } from "effect"
import * as StorePath from "../core/store-path.ts"
import { Sandbox } from "../services/sandbox.ts"
import { PostBuildHookFailed, type BuildOptions } from "../services/store-build.ts"

/** Runs the hook of `options` (if any) for `drvPath` built into `outputs`. */
export const runPostBuildHook = (
  options: BuildOptions,
  drvPath: StorePath.StorePath,
  outputs: Iterable<StorePath.StorePath>,
  storeDir: string
): Effect.Effect<void, PostBuildHookFailed, Sandbox> => Effect.gen(function*() {
  const hook = options.postBuildHook
  if (hook === undefined || hook.program === "") return
  const sandbox = yield* Sandbox
  const printed = StorePath.print(drvPath, storeDir)
  // OUT_PATHS as Nix prints a StorePathSet: distinct, ordered by base name, space-separated
  const outPaths = [...new Map([...outputs].map((p) => [StorePath.baseName(p), p])).entries()]
    .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([, p]) => StorePath.print(p, storeDir))
  const run = sandbox.runHook
  if (run === undefined) {
    return yield* new PostBuildHookFailed({ drvPath: printed, program: hook.program, status: "cannot run: this builder runs no programs on the host" })
  }
  options.onEvent?.({ type: "post-build-hook", drvPath: printed, program: hook.program })
  yield* Effect.scoped(run({
    program: hook.program, drvPath: printed,
    env: { DRV_PATH: printed, OUT_PATHS: outPaths.join(" ") },
    defaultEnv: hook.nixConfig !== undefined ? { NIX_CONFIG: hook.nixConfig } : undefined,
    onLine: options.onHookLog ? (line) => options.onHookLog!(printed, line) : undefined
  })).pipe(Effect.ensuring(Effect.sync(() => options.onEvent?.({ type: "post-build-hook-done", drvPath: printed }))))
})
