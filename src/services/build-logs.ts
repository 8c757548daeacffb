/** `BuildLogs`: reading the build logs a store keeps (the local store keeps them where Nix does). */
import { Context, type Effect, type Option, type Stream } from "effect"
import type { StoreError, StoreIoError } from "./store-errors.ts"

export interface BuildLogsApi {
  /** The log of a derivation's build (by its printed `.drv` path), or none. */
  readonly readLog: (drvPath: string) => Effect.Effect<Option.Option<Stream.Stream<Uint8Array, StoreIoError>>, StoreError>
}

export class BuildLogs extends Context.Service<BuildLogs, BuildLogsApi>()("b3/BuildLogs") {}
