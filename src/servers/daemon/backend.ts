/**
 * What the daemon serves: a store's services as the Effect context holds them. Only `StoreRead` is
 * required; an op that needs a service the store lacks gets a protocol error the client prints.
 */
import { Effect, Option } from "effect"
import type { PublicKey } from "../../core/signature.ts"
import { StoreBuild, type StoreBuildApi } from "../../services/store-build.ts"
import { StoreMaintenance, type StoreMaintenanceApi } from "../../services/store-maintenance.ts"
import { StoreRead, type StoreReadApi } from "../../services/store-read.ts"
import { StoreWrite, type StoreWriteApi } from "../../services/store-write.ts"

export interface DaemonBackend {
  readonly read: StoreReadApi
  readonly write?: StoreWriteApi | undefined
  readonly build?: StoreBuildApi | undefined
  readonly maintenance?: StoreMaintenanceApi | undefined
}

/** The store's services from the context: StoreRead, and whichever others it has. */
export const backendFromContext: Effect.Effect<DaemonBackend, never, StoreRead> = Effect.gen(function*() {
  const read = yield* StoreRead
  const write = Option.getOrUndefined(yield* Effect.serviceOption(StoreWrite))
  const build = Option.getOrUndefined(yield* Effect.serviceOption(StoreBuild))
  const maintenance = Option.getOrUndefined(yield* Effect.serviceOption(StoreMaintenance))
  return { read, write, build, maintenance }
})

export interface DaemonOptions {
  /** Whether clients are trusted (Nix's trusted-users): they may add unsigned paths, signatures, build input-addressed derivations. */
  readonly trusted: boolean
  /** Refuse input-addressed paths without a signature by a trusted key (Nix's require-sigs; default true). */
  readonly requireSigs: boolean
  readonly trustedKeys: ReadonlyArray<PublicKey>
  /** Sent to clients that ask (protocol 1.33+), shown by `nix store ping`. */
  readonly version: string
  /** Host paths shown in build sandboxes (Nix's sandbox-paths); trusted clients may add more with `extra-sandbox-paths`. */
  readonly sandboxPaths?: ReadonlyArray<string> | undefined
  /** Hard-link the files of new paths to identical ones (Nix's auto-optimise-store; trusted clients may set it too). */
  readonly autoOptimiseStore?: boolean | undefined
  /** A program run after each build (Nix's post-build-hook, with DRV_PATH and OUT_PATHS); trusted clients may set their own. */
  readonly postBuildHook?: string | undefined
  /** Secret key files whose keys sign what the daemon builds (Nix's secret-key-files). */
  readonly secretKeyFiles?: ReadonlyArray<string> | undefined
  /** The daemon's own log (connections accepted and closed, failures). */
  readonly log?: ((line: string) => void) | undefined
}
