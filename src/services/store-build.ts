/**
 * `StoreBuild`: realising derivations. Only a layer with a builder (the sandboxed local builder)
 * provides it; caches never do.
 */
import { Context, Schema, type Effect } from "effect"
import type * as StorePath from "../core/store-path.ts"
import type { StoreError } from "./store-error.ts"

export class BuildFailed extends Schema.TaggedError<BuildFailed>()("BuildFailed", {
  drvPath: Schema.String,
  reason: Schema.String,
  logTail: Schema.String
}) {
  override get message() {
    return `build of '${this.drvPath}' failed: ${this.reason}${this.logTail ? `\nlast log lines:\n${this.logTail}` : ""}`
  }
}

export interface BuildOptions {
  readonly maxJobs?: number
  readonly keepGoing?: boolean
}

export interface BuildResult {
  readonly drvPath: StorePath.StorePath
  /** Output name → realised store path. */
  readonly outputs: Readonly<Record<string, StorePath.StorePath>>
  /** How the outputs came to be valid. */
  readonly status: "built" | "substituted" | "already-valid"
}

export interface StoreBuildApi {
  readonly buildDerivations: (
    drvPaths: ReadonlyArray<StorePath.StorePath>,
    options?: BuildOptions
  ) => Effect.Effect<ReadonlyArray<BuildResult>, BuildFailed | StoreError>
}

export class StoreBuild extends Context.Service<StoreBuild, StoreBuildApi>()("b3/StoreBuild") {}
