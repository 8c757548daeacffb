/**
 * `Sandbox`: runs one derivation's builder, isolated, and hands back its outputs. The builder
 * (src/build) decides what to build and registers the outputs; a sandbox only runs one spec. The
 * bubblewrap sandbox (src/layers/sandbox) reproduces Nix 2.8's; tests use fakes.
 */
import { Context, type Effect, type Scope } from "effect"
import type * as Derivation from "../core/derivation/index.ts"
import type * as StorePath from "../core/store-path.ts"
import type { BuiltOutput } from "./build-host.ts"
import type { BuildFailed, PostBuildHookFailed } from "./store-build.ts"

export interface SandboxSpec {
  /** The logical store directory the builder sees, e.g. "/nix/store". */
  readonly storeDir: string
  /** Where store paths physically are (differs from storeDir for a chroot store). */
  readonly realStoreDir: string
  /** The `.drv` store path being built (for messages). */
  readonly drvPath: StorePath.StorePath
  /** The derivation being built, for sandboxes that hand it on whole (a remote builder sends it with BuildDerivation). */
  readonly derivation?: Derivation.Derivation | undefined
  /** The derivation's name ("hello" for hello.drv); names the build directory nix-build-<name>.drv-N. */
  readonly drvName: string
  readonly builder: string
  readonly args: ReadonlyArray<string>
  /** The derivation's environment, output paths already filled in. Ignored with structured attrs. */
  readonly env: Readonly<Record<string, string>>
  /** The input closure: the only store paths visible inside. */
  readonly inputPaths: ReadonlyArray<StorePath.StorePath>
  /** The output paths the builder must create. */
  readonly outputPaths: ReadonlyArray<StorePath.StorePath>
  /** Fixed-output derivation: host network, /etc/resolv.conf etc., NIX_OUTPUT_CHECKED, impureEnvVars. */
  readonly fixedOutput: boolean
  /** Impure derivation (`__impure`): host network, /etc/resolv.conf etc. and impureEnvVars, like a fixed-output one (no NIX_OUTPUT_CHECKED). */
  readonly impure?: boolean | undefined
  /** For `builtin:fetchurl`: Nix's `hashed-mirrors`, asked first for flat files by hash. */
  readonly hashedMirrors?: ReadonlyArray<string> | undefined
  /** `__structuredAttrs`: contents of /build/.attrs.json and /build/.attrs.sh. */
  readonly structuredAttrs?: { readonly json: string; readonly sh: string } | undefined
  /** The derivation's platform; "i686-linux" gets the 32-bit personality. Default "x86_64-linux". */
  readonly platform?: string | undefined
  /** NIX_BUILD_CORES. */
  readonly cores: number
  readonly timeoutSeconds?: number | undefined
  readonly maxSilentSeconds?: number | undefined
  /** Builder stdout + stderr as it arrives (also the sandbox's own error messages). */
  readonly onLog?: ((chunk: Uint8Array) => void) | undefined
  /**
   * Host paths made visible (read-only) in the sandbox, as Nix's `sandbox-paths`: `PATH`,
   * `TARGET=SOURCE`, a trailing `?` for paths that may be missing. Symlinks are recreated as links.
   */
  readonly sandboxPaths?: ReadonlyArray<string> | undefined
  /** Extra files for the build directory, owned by root, 0644 (e.g. exportReferencesGraph files). */
  readonly extraBuildFiles?: Readonly<Record<string, string>> | undefined
  /** Where a fixed-output derivation's impureEnvVars are read from; default process.env. */
  readonly hostEnv?: Readonly<Record<string, string | undefined>> | undefined
}

export interface SandboxResult {
  /** Printed output path → the output, canonical; valid until the Scope closes. */
  readonly outputs: Readonly<Record<string, BuiltOutput>>
  /** The last lines of the build log. */
  readonly logTail: string
}

/** A program run on the host (not sandboxed) after a build: Nix's `post-build-hook`. */
export interface HookSpec {
  readonly program: string
  /** The `.drv` the hook runs for (printed), for messages. */
  readonly drvPath: string
  /** Added to the host's environment (replacing what it has): DRV_PATH, OUT_PATHS. */
  readonly env: Readonly<Record<string, string>>
  /** Added only where the host's environment lacks them (NIX_CONFIG: Nix `emplace`s it, so a daemon's own NIX_CONFIG wins). */
  readonly defaultEnv?: Readonly<Record<string, string>> | undefined
  /** Each line of its output (stdout and stderr merged), without the newline. */
  readonly onLine?: ((line: string) => void) | undefined
}

export interface SandboxApi {
  /** The platforms this sandbox builds for, e.g. ["x86_64-linux", "i686-linux"]. */
  readonly systems: ReadonlyArray<string>
  /** Runs the builder; its outputs live until the scope closes. Any failure is a BuildFailed naming the derivation. */
  readonly run: (spec: SandboxSpec) => Effect.Effect<SandboxResult, BuildFailed, Scope.Scope>
  /**
   * Runs a post-build-hook on this machine and waits for it; closing the scope early kills it.
   * Sandboxes that cannot run host programs leave it out (a build asked for a hook then fails).
   */
  readonly runHook?: ((spec: HookSpec) => Effect.Effect<void, PostBuildHookFailed, Scope.Scope>) | undefined
}

export class Sandbox extends Context.Service<Sandbox, SandboxApi>()("b3/Sandbox") {}
