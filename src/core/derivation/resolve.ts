/**
 * Resolving a derivation (Nix 2.8's `Derivation::tryResolve`), once the outputs of its input
 * derivations are known: every input derivation output becomes an input source (its actual path),
 * the placeholders that stood for those paths (`downstreamPlaceholder`) are replaced by them in the
 * builder, arguments and environment, and outputs that were deferred because an input was
 * floating content-addressed become input-addressed. The resolved derivation has no input
 * derivations; building it stands for building the original, and its outputs' realisations
 * are what make early cut-off work (two derivations that resolve alike are built once).
 */
import { Result } from "effect"
import * as StorePath from "../store-path.ts"
import type { HashModuloError } from "./hash-modulo.ts"
import { hashDerivationModulo } from "./hash-modulo.ts"
import { downstreamPlaceholder } from "./placeholders.ts"
import { rewriteStrings } from "./structured-attrs.ts"
import { inputAddressed, type Derivation, type DerivationOutput } from "./types.ts"

/** What a resolution needs that is missing: an input derivation output that has no known path yet. */
export interface Unresolved {
  readonly drvPath: string
  readonly outputName: string
}

/**
 * The resolved derivation, or the first input output whose path `outputPath` does not know.
 * `outputPath(drvPath, outputName)` gives the full store path an input derivation's output has.
 */
export const tryResolve = (
  drv: Derivation,
  outputPath: (drvPath: string, outputName: string) => string | undefined,
  storeDir: string = StorePath.defaultStoreDir
): Result.Result<Derivation, Unresolved | HashModuloError> => {
  const rewrites = new Map<string, string>()
  const inputSrcs = new Set(drv.inputSrcs)
  for (const [drvPath, names] of drv.inputDrvs) {
    for (const outputName of names) {
      const actual = outputPath(drvPath, outputName)
      if (actual === undefined) return Result.fail({ drvPath, outputName })
      rewrites.set(downstreamPlaceholder(drvPath, outputName), actual)
      inputSrcs.add(actual)
    }
  }
  const env = new Map<string, string>()
  for (const [name, value] of drv.env) env.set(rewriteStrings(name, rewrites), rewriteStrings(value, rewrites))
  const resolved: Derivation = {
    ...drv,
    inputDrvs: new Map(),
    inputSrcs: [...inputSrcs],
    builder: rewriteStrings(drv.builder, rewrites),
    args: drv.args.map((a) => rewriteStrings(a, rewrites)),
    env
  }
  if (![...drv.outputs.values()].some((o) => o._tag === "Deferred")) return Result.succeed(resolved)
  return Result.map(hashDerivationModulo(resolved, true, { storeDir }), (h) => {
    const outputs = new Map<string, DerivationOutput>()
    for (const [name, output] of resolved.outputs) {
      if (output._tag !== "Deferred") { outputs.set(name, output); continue }
      const path = StorePath.print(StorePath.makeOutput(name, h.hashes.get(name)!, resolved.name, storeDir), storeDir)
      env.set(name, path)
      outputs.set(name, inputAddressed(path))
    }
    return { ...resolved, outputs, env }
  })
}
