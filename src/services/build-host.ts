/**
 * `BuildHost`: what the builder needs of the store it builds into, beyond reading and writing
 * paths: where store paths lie on disk (a sandbox bind-mounts its inputs from there), where build
 * logs go, and registering a build's outputs in one step. Validity comes from `StoreRead`, which
 * every host also provides. The local store implements it on disk, the in-memory store in memory.
 */
import { Context, type Effect, type Scope, type Stream } from "effect"
import type * as StorePath from "../core/store-path.ts"
import type { PathInfo } from "../core/path-info.ts"
import type { StoreError, StoreIoError } from "./store-errors.ts"

/** One output as a sandbox leaves it: canonical, and readable as a NAR until the build's scope closes. */
export interface BuiltOutput {
  /** The output's NAR. */
  readonly nar: Stream.Stream<Uint8Array, StoreIoError>
  /** Where the output lies on this machine's disk, when it does: a host on that disk moves it in rather than copying. */
  readonly physicalPath?: string | undefined
}

/** A built output with the path info it is registered under. */
export interface BuiltPath {
  readonly info: PathInfo
  readonly output: BuiltOutput
}

/** Where a running build's log goes. */
export interface BuildLogSink {
  readonly write: (chunk: Uint8Array) => void
}

export interface BuildHostApi {
  /** The logical store directory builders see, e.g. `/nix/store`. */
  readonly storeDir: string
  /** Where store paths physically are (differs from storeDir for a chroot store). */
  readonly realStoreDir: string
  /** Keeps paths (a build's inputs) from being collected while this process lives. */
  readonly addTempRoots: (paths: ReadonlyArray<StorePath.StorePath>) => Effect.Effect<void, StoreError>
  /** Opens (truncating) the log of a build for the scope; a log that cannot be written is dropped, never fatal. */
  readonly openLog: (drvPath: string) => Effect.Effect<BuildLogSink, never, Scope.Scope>
  /**
   * Registers the outputs of one build together: all of them become valid, with their references
   * and deriver, or none does. References must be valid already or among `built`.
   */
  readonly registerBuilt: (built: ReadonlyArray<BuiltPath>) => Effect.Effect<void, StoreError>
}

export class BuildHost extends Context.Service<BuildHost, BuildHostApi>()("b3/BuildHost") {}
