/**
 * What kind of derivation this is, from its outputs (Nix 2.8's `BasicDerivation::type()`): all
 * outputs must be of one kind, and a fixed-output derivation has exactly one output, `out`.
 */
import { Result } from "effect"
import * as StorePath from "../store-path.ts"
import { InvalidDerivation } from "./errors.ts"
import type { Derivation, DerivationOutput } from "./types.ts"

export type DerivationType =
  /** Input-addressed, output paths known. */
  | "InputAddressed"
  /** Input-addressed, but paths deferred because an input is floating content-addressed. */
  | "Deferred"
  | "Fixed"
  | "Floating"
  | "Impure"

const typeOfOutput: Record<DerivationOutput["_tag"], DerivationType> = {
  InputAddressed: "InputAddressed",
  Deferred: "Deferred",
  Fixed: "Fixed",
  Floating: "Floating",
  Impure: "Impure"
}

const fail = (drv: Derivation, reason: string) => Result.fail(new InvalidDerivation({ input: drv.name, offset: -1, reason }))

export const derivationType = (drv: Derivation): Result.Result<DerivationType, InvalidDerivation> => {
  const kinds = new Set([...drv.outputs.values()].map((o) => typeOfOutput[o._tag]))
  if (kinds.size === 0) return fail(drv, "a derivation must have at least one output")
  if (kinds.size > 1) return fail(drv, "a derivation cannot mix output types (input-addressed, fixed, floating, deferred, impure)")
  const [kind] = kinds as unknown as [DerivationType]
  if (kind === "Fixed") {
    if (drv.outputs.size > 1) return fail(drv, "only one fixed output is allowed")
    if (!drv.outputs.has("out")) return fail(drv, "a single fixed output must be named \"out\"")
  }
  if (kind === "Floating") {
    const algorithms = new Set([...drv.outputs.values()].map((o) => o._tag === "Floating" ? o.algorithm : ""))
    if (algorithms.size > 1) return fail(drv, "all floating outputs must use the same hash type")
  }
  return Result.succeed(kind)
}

/** The path a fixed output must have: made from its hash, method and `<drv name>[-<output>]`. */
export const fixedOutputPath = (
  drvName: string,
  outputName: string,
  output: Extract<DerivationOutput, { _tag: "Fixed" }>,
  storeDir: string = StorePath.defaultStoreDir
): StorePath.StorePath =>
  StorePath.makeFixedOutput(output.method, output.hash, StorePath.outputPathName(drvName, outputName), { storeDir })
