/**
 * `StoreBuild`: realising derivations. Only a layer with a builder (the sandboxed local builder)
 * provides it; caches never do.
 */
import { Context, Schema, type Effect } from "effect"
import { InvalidDerivationAttribute } from "../core/derivation/parsed.ts"
import type * as Derivation from "../core/derivation/index.ts"
import type * as Signature from "../core/signature.ts"
import type * as StorePath from "../core/store-path.ts"
import type { StoreError } from "./store-errors.ts"
import type { StoreReadApi } from "./store-read.ts"

export class BuildFailed extends Schema.TaggedError<BuildFailed>()("BuildFailed", {
  drvPath: Schema.String,
  reason: Schema.String,
  logTail: Schema.String
}) {
  override get message() {
    return `build of '${this.drvPath}' failed: ${this.reason}${this.logTail ? `\nlast log lines:\n${this.logTail}` : ""}`
  }
}

/** A fixed-output derivation produced contents whose hash is not the one it declared. */
export class OutputHashMismatch extends Schema.TaggedError<OutputHashMismatch>()("OutputHashMismatch", {
  drvPath: Schema.String,
  output: Schema.String,
  specified: Schema.String,
  got: Schema.String
}) {
  override get message() {
    return `hash mismatch in fixed-output derivation '${this.drvPath}':\n  specified: ${this.specified}\n  got:       ${this.got}`
  }
}

/**
 * An output the build produced breaks one of the derivation's checks (`allowedReferences`,
 * `disallowedRequisites`, `outputChecks.<output>.maxSize`, …); `reason` is worded as Nix's.
 */
export class OutputRejected extends Schema.TaggedError<OutputRejected>()("OutputRejected", {
  drvPath: Schema.String,
  output: Schema.String,
  reason: Schema.String
}) {
  override get message() { return this.reason }
}

/** The derivation needs a platform or system features (`requiredSystemFeatures`) this builder lacks; worded as Nix's. */
export class MissingSystemFeatures extends Schema.TaggedError<MissingSystemFeatures>()("MissingSystemFeatures", {
  drvPath: Schema.String,
  platform: Schema.String,
  required: Schema.Array(Schema.String),
  system: Schema.String,
  features: Schema.Array(Schema.String)
}) {
  override get message() {
    return `a '${this.platform}' with features {${this.required.join(", ")}} is required to build '${this.drvPath}', ` +
      `but I am a '${this.system}' with features {${this.features.join(", ")}}`
  }
}

/**
 * The post-build-hook (Nix's `post-build-hook`) did not exit 0 after a build; as in Nix 2.8 the
 * build's outputs stay registered, and the message is Nix's (`program '…' failed with exit code 1`).
 */
export class PostBuildHookFailed extends Schema.TaggedError<PostBuildHookFailed>()("PostBuildHookFailed", {
  drvPath: Schema.String,
  program: Schema.String,
  /** Nix's statusToString: "failed with exit code N", "failed due to signal N". */
  status: Schema.String
}) {
  override get message() { return `program '${this.program}' ${this.status}` }
}

/** A derivation attribute the builder cannot honour as given (a bad reference specifier, exportReferencesGraph, …); worded as Nix's. */
export { InvalidDerivationAttribute }

export type BuildError = BuildFailed | OutputHashMismatch | OutputRejected | MissingSystemFeatures | InvalidDerivationAttribute | PostBuildHookFailed

/** What happens during a build, for progress displays and scripts. */
export type BuildEvent =
  | { readonly type: "plan"; readonly build: ReadonlyArray<string>; readonly valid: ReadonlyArray<string> }
  | { readonly type: "substituting"; readonly drvPath: string; readonly from: string }
  | { readonly type: "substituted"; readonly drvPath: string; readonly from: string }
  /** A substituter has the outputs, but not signed by a trusted key: it is passed over. */
  | { readonly type: "untrusted-substitute"; readonly drvPath: string; readonly from: string; readonly path: string }
  /** A derivation that depends on outputs known only after their build was resolved; the resolved one is built in its place. */
  | { readonly type: "resolved"; readonly drvPath: string; readonly resolved: string }
  | { readonly type: "building"; readonly drvPath: string }
  | { readonly type: "built"; readonly drvPath: string; readonly outputs: Readonly<Record<string, string>> }
  | { readonly type: "failed"; readonly drvPath: string; readonly message: string }
  /** The post-build-hook starts for a derivation that was built (its outputs registered); `done` when it has exited. */
  | { readonly type: "post-build-hook"; readonly drvPath: string; readonly program: string }
  | { readonly type: "post-build-hook-done"; readonly drvPath: string }

export interface BuildOptions {
  /** Builds run at once (default 1). */
  readonly maxJobs?: number | undefined
  /** On a failure, go on with builds that do not depend on it (default false: stop at once). */
  readonly keepGoing?: boolean | undefined
  /** NIX_BUILD_CORES for each build (default: the number of CPUs). */
  readonly cores?: number | undefined
  readonly timeoutSeconds?: number | undefined
  readonly maxSilentSeconds?: number | undefined
  /** Host paths visible in the sandbox (Nix's sandbox-paths: `PATH`, `TARGET=SOURCE`, `PATH?`). */
  readonly sandboxPaths?: ReadonlyArray<string> | undefined
  /** Stores to take outputs from instead of building them, in order. */
  readonly substituters?: ReadonlyArray<StoreReadApi>
  /** Keys whose signatures make substituted paths trusted. */
  readonly trustedKeys?: ReadonlyArray<Signature.PublicKey>
  readonly onEvent?: (event: BuildEvent) => void
  /** Each root's result as soon as it is known (also when others fail, with `keepGoing`). */
  readonly onResult?: (result: BuildResult) => void
  /** Builder output as it arrives. */
  readonly onLog?: (drvPath: string, chunk: Uint8Array) => void
  /**
   * Nix's `post-build-hook`: a program run on the host after each derivation built (not
   * substituted or already valid), once its outputs are registered, with DRV_PATH and OUT_PATHS
   * (space-separated) added to the environment; a failure stops the build (`PostBuildHookFailed`).
   * `nixConfig` becomes its NIX_CONFIG unless the host's environment has one (Nix passes its
   * settings that way, never replacing its own NIX_CONFIG).
   */
  readonly postBuildHook?: { readonly program: string; readonly nixConfig?: string | undefined } | undefined
  /** The post-build-hook's output (stdout and stderr), line by line, without the newline. */
  readonly onHookLog?: (drvPath: string, line: string) => void
  /** The features this builder offers (`requiredSystemFeatures`); default Nix 2.8's: benchmark, big-parallel, ca-derivations, kvm (with /dev/kvm), nixos-test. */
  readonly systemFeatures?: ReadonlyArray<string> | undefined
  /** Nix's `hashed-mirrors`: servers builtin:fetchurl asks for a flat file by its hash first (`<mirror>/<algo>/<base16>`). */
  readonly hashedMirrors?: ReadonlyArray<string> | undefined
}

export interface BuildResult {
  readonly drvPath: StorePath.StorePath
  /** Output name → realised store path. */
  readonly outputs: Readonly<Record<string, StorePath.StorePath>>
  /** How the outputs came to be valid. */
  readonly status: "built" | "substituted" | "already-valid"
}

/** The outcome of building one derivation sent whole (`buildBasic`). */
export interface BasicBuildResult {
  /** Output name → store path. */
  readonly outputs: Readonly<Record<string, StorePath.StorePath>>
  readonly status: "built" | "already-valid"
}

export interface StoreBuildApi {
  /** Realises the derivations (already valid in the store) and everything they need. */
  readonly buildDerivations: (
    drvPaths: ReadonlyArray<StorePath.StorePath>,
    options?: BuildOptions
  ) => Effect.Effect<ReadonlyArray<BuildResult>, BuildError | StoreError>
  /**
   * Builds one derivation given whole, as Nix's BuildDerivation (remote builders, the serve
   * protocol): its inputs are all sources already valid in the store and the `.drv` itself need
   * not be in the store. Its outputs are registered as built from `drvPath`.
   */
  readonly buildBasic?: (
    drvPath: StorePath.StorePath,
    drv: Derivation.Derivation,
    options?: BuildOptions
  ) => Effect.Effect<BasicBuildResult, BuildError | StoreError>
}

export class StoreBuild extends Context.Service<StoreBuild, StoreBuildApi>()("b3/StoreBuild") {}
