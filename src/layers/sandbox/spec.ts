/** What one sandboxed build needs (`SandboxSpec`) and what it gives back (`SandboxResult`). */

/** A host account builds run as (mapped to uid 1000 / gid 100 inside the sandbox). */
export interface BuildUser {
  readonly name: string
  readonly uid: number
  readonly gid: number
  /** Nix's user-pool lock file for this user; held (shared) during the build when present. */
  readonly lockFile?: string
}

export interface SandboxSpec {
  /** The logical store directory the builder sees, e.g. "/nix/store". */
  readonly storeDir: string
  /** Where store paths physically are (differs from storeDir for a chroot store). */
  readonly realStoreDir: string
  /** The derivation's name ("hello" for hello.drv); names the build directory nix-build-<name>.drv-N. */
  readonly drvName: string
  readonly builder: string
  readonly args: ReadonlyArray<string>
  /** The derivation's environment, output paths already filled in. Ignored with structured attrs. */
  readonly env: Readonly<Record<string, string>>
  /** The input closure as logical store paths: the only store paths visible inside. */
  readonly inputPaths: ReadonlyArray<string>
  /** The logical output paths the builder must create. */
  readonly outputPaths: ReadonlyArray<string>
  /** Fixed-output derivation: host network, /etc/resolv.conf etc., NIX_OUTPUT_CHECKED, impureEnvVars. */
  readonly fixedOutput: boolean
  /** `__structuredAttrs`: contents of /build/.attrs.json and /build/.attrs.sh. */
  readonly structuredAttrs?: { readonly json: string; readonly sh: string }
  /** The derivation's platform (drv.platform); "i686-linux" gets the 32-bit personality. Default "x86_64-linux". */
  readonly platform?: string
  /** NIX_BUILD_CORES. */
  readonly cores: number
  readonly timeoutSeconds?: number
  readonly maxSilentSeconds?: number
  /** Builder stdout + stderr as it arrives (also bubblewrap's own error messages). */
  readonly onLog?: (chunk: Uint8Array) => void
  /** Host account to build as; default: the first free of `ensureBuildUsers()` (nixbld1… else b3bld). */
  readonly buildUser?: BuildUser
  /** Extra files for the build directory, owned by root, 0644 (e.g. exportReferencesGraph files). */
  readonly extraBuildFiles?: Readonly<Record<string, string>>
  /** Where a fixed-output derivation's impureEnvVars are read from; default process.env. */
  readonly hostEnv?: Readonly<Record<string, string | undefined>>
}

export interface SandboxResult {
  /** Logical output path → the physical directory (or file) where the output now is. Valid until the Scope closes. */
  readonly outputs: Readonly<Record<string, string>>
  /** The last lines of the build log. */
  readonly logTail: string
}
