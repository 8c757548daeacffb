/**
 * What one run of bubblewrap needs (`RunSpec`: the service's `SandboxSpec` with printed store paths
 * and a build user) and what it gives back (`RunResult`: where the outputs are on disk).
 */
import type { SandboxSpec } from "../../services/sandbox.ts"

/** A host account builds run as (mapped to uid 1000 / gid 100 inside the sandbox). */
export interface BuildUser {
  readonly name: string
  readonly uid: number
  readonly gid: number
  /** Nix's user-pool lock file for this user; held (shared) during the build when present. */
  readonly lockFile?: string
}

export interface RunSpec extends Omit<SandboxSpec, "drvPath" | "inputPaths" | "outputPaths"> {
  /** The input closure as printed store paths: the only store paths visible inside. */
  readonly inputPaths: ReadonlyArray<string>
  /** The printed output paths the builder must create. */
  readonly outputPaths: ReadonlyArray<string>
  /** Host account to build as; default: the first free of `ensureBuildUsers()` (nixbld1… else b3bld). */
  readonly buildUser?: BuildUser
}

export interface RunResult {
  /** Printed output path → the physical directory (or file) where the output now is. Valid until the Scope closes. */
  readonly outputs: Readonly<Record<string, string>>
  /** The last lines of the build log. */
  readonly logTail: string
}
