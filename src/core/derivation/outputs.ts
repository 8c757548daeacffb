/**
 * Output paths of a derivation, computed as Nix does:
 *
 * - input-addressed: `makeOutput("output:<name>", hashDerivationModulo(drv, masked), <drv name>)`;
 * - fixed-output: `makeFixedOutput(method, hash, <drv name>)` (flat, or recursive/NAR);
 * - floating content-addressed, impure, and input-addressed derivations that depend on floating
 *   outputs (deferred): unknown until built (`undefined`).
 *
 * `checkOutputs` is Nix's check when a `.drv` is added to a store: recorded paths and the
 * environment variables named after the outputs must be the computed ones.
 */
import { Result } from "effect"
import * as StorePath from "../store-path.ts"
import { derivationType, fixedOutputPath } from "./derivation-type.ts"
import { InvalidDerivation } from "./errors.ts"
import { hashDerivationModulo, type HashModuloError, type HashModuloOptions } from "./hash-modulo.ts"
import type { Derivation } from "./types.ts"

/** Output name → its store path, or `undefined` when the path is known only after the build. */
export const computeOutputPaths = (
  drv: Derivation,
  options: HashModuloOptions = {}
): Result.Result<ReadonlyMap<string, string | undefined>, HashModuloError> => {
  const storeDir = options.storeDir ?? StorePath.defaultStoreDir
  return Result.flatMap(derivationType(drv), (type): Result.Result<ReadonlyMap<string, string | undefined>, HashModuloError> => {
    if (type === "Fixed") {
      return Result.succeed(new Map([...drv.outputs].map(([name, output]) =>
        [name, output._tag === "Fixed" ? StorePath.print(fixedOutputPath(drv.name, name, output, storeDir), storeDir) : undefined])))
    }
    if (type === "Floating" || type === "Impure") return Result.succeed(new Map([...drv.outputs.keys()].map((name) => [name, undefined])))
    return Result.map(hashDerivationModulo(drv, true, options), (h) =>
      new Map([...drv.outputs.keys()].map((name) => [name, h.kind === "Deferred"
        ? undefined
        : StorePath.print(StorePath.makeOutput(name, h.hashes.get(name)!, drv.name, storeDir), storeDir)])))
  })
}

/** Checks that recorded output paths and their environment variables are the computed ones. */
export const checkOutputs = (drv: Derivation, options: HashModuloOptions = {}): Result.Result<ReadonlyMap<string, string | undefined>, HashModuloError> =>
  Result.flatMap(computeOutputPaths(drv, options), (computed) => {
    const fail = (reason: string) => Result.fail(new InvalidDerivation({ input: drv.name, offset: -1, reason }))
    for (const [name, output] of drv.outputs) {
      if (output._tag !== "InputAddressed" && output._tag !== "Fixed") continue
      const expected = computed.get(name)
      if (expected === undefined) return fail(`output '${name}' has a path, but it depends on floating content-addressed outputs`)
      if (output.path !== expected) return fail(`output '${name}' is recorded as '${output.path}', but should be '${expected}'`)
      if (drv.env.get(name) !== expected) return fail(`environment variable '${name}' should be '${expected}'`)
    }
    return Result.succeed(computed)
  })
