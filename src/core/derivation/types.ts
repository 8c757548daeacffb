/**
 * The derivation model, as Nix 2.8 holds it in memory: outputs, input derivations (with the output
 * names used), input sources, system, builder, args and environment. Store paths are kept as full
 * path strings (`/nix/store/<hash>-<name>`), exactly as the ATerm `.drv` file spells them.
 *
 * Maps are printed sorted (bytewise, as Nix's `std::map` does), so their insertion order does not matter.
 */
import type * as Hash from "../hash.ts"
import type { FileIngestionMethod } from "../store-path.ts"

/** One output of a derivation. The five kinds Nix 2.8 knows. */
export type DerivationOutput =
  /** A path known in advance, computed from the derivation (the usual case). */
  | { readonly _tag: "InputAddressed"; readonly path: string }
  /** A fixed-output (content-addressed with a known hash) output, e.g. a fetcher's result. */
  | { readonly _tag: "Fixed"; readonly path: string; readonly method: FileIngestionMethod; readonly hash: Hash.Hash }
  /** A floating content-addressed output (`__contentAddressed = true`): the path is known only after the build. */
  | { readonly _tag: "Floating"; readonly method: FileIngestionMethod; readonly algorithm: Hash.HashAlgorithm }
  /** An input-addressed output whose path is not known yet, because an input is floating content-addressed. */
  | { readonly _tag: "Deferred" }
  /** An output of an impure derivation (`__impure = true`). */
  | { readonly _tag: "Impure"; readonly method: FileIngestionMethod; readonly algorithm: Hash.HashAlgorithm }

export interface Derivation {
  /** The derivation name (the drv path's name without `.drv`); not part of the ATerm itself. */
  readonly name: string
  readonly outputs: ReadonlyMap<string, DerivationOutput>
  /** Input derivation path → the names of its outputs this derivation uses. */
  readonly inputDrvs: ReadonlyMap<string, ReadonlyArray<string>>
  readonly inputSrcs: ReadonlyArray<string>
  readonly system: string
  readonly builder: string
  readonly args: ReadonlyArray<string>
  readonly env: ReadonlyMap<string, string>
}

export const inputAddressed = (path: string): DerivationOutput => ({ _tag: "InputAddressed", path })
export const fixed = (path: string, method: FileIngestionMethod, hash: Hash.Hash): DerivationOutput => ({ _tag: "Fixed", path, method, hash })
export const floating = (method: FileIngestionMethod, algorithm: Hash.HashAlgorithm): DerivationOutput => ({ _tag: "Floating", method, algorithm })
export const deferred: DerivationOutput = { _tag: "Deferred" }
export const impure = (method: FileIngestionMethod, algorithm: Hash.HashAlgorithm): DerivationOutput => ({ _tag: "Impure", method, algorithm })

/** The output's path if it is known before building (input-addressed and fixed outputs). */
export const outputPath = (output: DerivationOutput): string | undefined =>
  output._tag === "InputAddressed" || output._tag === "Fixed" ? output.path : undefined

/** `r:sha256`, `sha1`, …: the method-and-algorithm string of the ATerm's third output field. */
export const methodAlgo = (method: FileIngestionMethod, algorithm: Hash.HashAlgorithm): string =>
  `${method === "recursive" ? "r:" : ""}${algorithm}`

export const drvExtension = ".drv"

/** Derivations are small: a larger "derivation" (64 MiB) is refused rather than read into memory. */
export const maxDerivationBytes = 64 << 20

/** The derivation name of a `.drv` store path or base name: `…/<hash>-hello.drv` → `hello`. */
export const nameFromDrvPath = (drvPath: string): string => {
  const base = drvPath.slice(drvPath.lastIndexOf("/") + 1)
  const dash = base.indexOf("-")
  const name = dash >= 0 ? base.slice(dash + 1) : base
  return name.endsWith(drvExtension) ? name.slice(0, -drvExtension.length) : name
}

/** Whether the builder is one of Nix's built-in builders (`builtin:fetchurl`, …). */
export const isBuiltin = (drv: Derivation): boolean => drv.builder.startsWith("builtin:")
