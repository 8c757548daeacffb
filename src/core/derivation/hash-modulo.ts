/**
 * `hashDerivationModulo`, as Nix 2.8 defines it: a hash of a derivation that does not change when
 * only the way its fixed-output inputs are fetched changes. Output paths of input-addressed
 * derivations are made from it.
 *
 * - A fixed-output derivation hashes to `sha256("fixed:out:<r:?><algo>:<base16 hash>:<out path>")`.
 * - An impure derivation hashes to `sha256("impure")` (and taints dependents as deferred).
 * - Otherwise: sha256 of the ATerm in which each input derivation path is replaced by the base16 of
 *   that input's own (unmasked) hash for the used output, with the inputs re-sorted by that key;
 *   with `maskOutputs`, output paths and the environment variables named after outputs are empty.
 *
 * Inputs are found through `lookup` and memoised in `cache` (keyed by drv path, holding unmasked
 * hashes), so a large graph is hashed once per node. The graph walk uses an explicit stack, so deep
 * dependency chains cannot overflow the call stack; a cycle is reported as an error.
 */
import { Result } from "effect"
import * as Hash from "../hash.ts"
import * as StorePath from "../store-path.ts"
import { print } from "./aterm-print.ts"
import { InvalidDerivation, MissingDerivation } from "./errors.ts"
import { derivationType, fixedOutputPath } from "./derivation-type.ts"
import { nameFromDrvPath, type Derivation } from "./types.ts"

export interface DrvHash {
  /** Output name → the hash that stands for that output. */
  readonly hashes: ReadonlyMap<string, Hash.Hash>
  /** `Deferred` when this derivation or an input is floating content-addressed or impure. */
  readonly kind: "Regular" | "Deferred"
}

export interface HashModuloOptions {
  /** Finds an input derivation by its `.drv` path. */
  readonly lookup?: (drvPath: string) => Derivation | undefined
  /** Unmasked hashes of derivations already computed, by drv path; filled in as inputs are hashed. */
  readonly cache?: Map<string, DrvHash>
  readonly storeDir?: string
}

export type HashModuloError = InvalidDerivation | MissingDerivation

const impureOutputHash = Hash.hashBytes("sha256", "impure")

/** The hash of one derivation, given the (unmasked) hashes of all its inputs. */
const hashOne = (
  drv: Derivation,
  maskOutputs: boolean,
  inputHash: (drvPath: string) => DrvHash,
  storeDir: string
): Result.Result<DrvHash, InvalidDerivation> =>
  Result.flatMap(derivationType(drv), (type) => {
    if (type === "Fixed") {
      const hashes = new Map<string, Hash.Hash>()
      for (const [name, output] of drv.outputs) {
        if (output._tag !== "Fixed") continue
        const path = StorePath.print(fixedOutputPath(drv.name, name, output, storeDir), storeDir)
        const algo = `${output.method === "recursive" ? "r:" : ""}${output.hash.algorithm}`
        hashes.set(name, Hash.hashBytes("sha256", `fixed:out:${algo}:${Hash.encode(output.hash, "base16")}:${path}`))
      }
      return Result.succeed({ hashes, kind: "Regular" as const })
    }
    if (type === "Impure") {
      return Result.succeed({ hashes: new Map([...drv.outputs.keys()].map((name) => [name, impureOutputHash])), kind: "Deferred" as const })
    }
    let kind: DrvHash["kind"] = type === "Floating" ? "Deferred" : "Regular"
    const inputs = new Map<string, Array<string>>()
    for (const [drvPath, outputNames] of drv.inputDrvs) {
      const res = inputHash(drvPath)
      if (res.kind === "Deferred") kind = "Deferred"
      for (const outputName of outputNames) {
        const h = res.hashes.get(outputName)
        if (h === undefined) {
          return Result.fail(new InvalidDerivation({ input: drv.name, offset: -1, reason: `input derivation '${drvPath}' has no output '${outputName}'` }))
        }
        const key = Hash.encode(h, "base16")
        const names = inputs.get(key)
        if (names === undefined) inputs.set(key, [outputName])
        else names.push(outputName)
      }
    }
    const hash = Hash.hashBytes("sha256", print(drv, { maskOutputs, inputDrvs: inputs }))
    return Result.succeed({ hashes: new Map([...drv.outputs.keys()].map((name) => [name, hash])), kind })
  })

/**
 * Hashes every input derivation reachable from `drv` (that is not yet in `cache`) with an explicit
 * stack, children before parents.
 */
const hashInputs = (drv: Derivation, options: HashModuloOptions, storeDir: string): Result.Result<Map<string, DrvHash>, HashModuloError> => {
  const cache = options.cache ?? new Map<string, DrvHash>()
  const lookup = options.lookup ?? (() => undefined)
  const onPath = new Set<string>()
  type Frame = { readonly path: string; readonly drv: Derivation; readonly pending: Array<string> }
  const stack: Array<Frame> = []
  const push = (path: string, neededBy: string): Result.Result<void, HashModuloError> => {
    if (onPath.has(path)) {
      return Result.fail(new InvalidDerivation({ input: path, offset: -1, reason: "the derivation depends on itself (a cycle in the input graph)" }))
    }
    const found = lookup(path)
    if (found === undefined) return Result.fail(new MissingDerivation({ drvPath: path, neededBy }))
    // Nix reads an input's name from its path; fixed-output paths depend on it.
    const named = found.name === nameFromDrvPath(path) ? found : { ...found, name: nameFromDrvPath(path) }
    onPath.add(path)
    stack.push({ path, drv: named, pending: [...named.inputDrvs.keys()] })
    return Result.void
  }
  const root: Frame = { path: drv.name, drv, pending: [...drv.inputDrvs.keys()] }
  const rootPending = root.pending
  while (rootPending.length > 0 || stack.length > 0) {
    const frame = stack[stack.length - 1] ?? root
    const next = frame.pending.pop()
    if (next !== undefined) {
      if (cache.has(next)) continue
      const pushed = push(next, frame.path)
      if (Result.isFailure(pushed)) return Result.fail(pushed.failure)
      continue
    }
    if (frame === root) break
    stack.pop()
    onPath.delete(frame.path)
    const hashed = hashOne(frame.drv, false, (p) => cache.get(p)!, storeDir)
    if (Result.isFailure(hashed)) return Result.fail(hashed.failure)
    cache.set(frame.path, hashed.success)
  }
  return Result.succeed(cache)
}

/** `hashDerivationModulo(drv, maskOutputs)`: see the module comment. */
export const hashDerivationModulo = (
  drv: Derivation,
  maskOutputs: boolean,
  options: HashModuloOptions = {}
): Result.Result<DrvHash, HashModuloError> => {
  const storeDir = options.storeDir ?? StorePath.defaultStoreDir
  return Result.flatMap(hashInputs(drv, options, storeDir), (cache) =>
    hashOne(drv, maskOutputs, (p) => cache.get(p)!, storeDir))
}
