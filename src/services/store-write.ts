/**
 * `StoreWrite`: adding paths. Layers that provide it always provide `StoreRead` too; read-only
 * layers (a plain HTTP cache, an IPFS root opened by CID) do not, so a program that needs
 * `StoreWrite` does not type-check against them.
 */
import { Context, type Effect, type Stream } from "effect"
import type * as Hash from "../core/hash.ts"
import type * as Realisation from "../core/realisation.ts"
import type * as StorePath from "../core/store-path.ts"
import type { PathInfo } from "../core/path-info.ts"
import type { StoreError } from "./store-errors.ts"

export interface AddPathOptions {
  /** Store path name; defaults to the base name of the file system path. */
  readonly name?: string
  /** `recursive` (NAR, the default, like `nix-store --add`) or `flat` (a single regular file's bytes). */
  readonly method?: "flat" | "recursive"
  /** Hash algorithm of the content address; default sha256. */
  readonly algorithm?: Hash.HashAlgorithm
  /** Store paths the contents may refer to; those that occur become references. */
  readonly references?: ReadonlyArray<StorePath.StorePath>
  /** Told the NAR bytes read so far, as the add goes on (for progress displays). */
  readonly onProgress?: (bytes: number) => void
}

/** How `addMultiple` goes about it; every field is a hint a layer may ignore. */
export interface AddMultipleOptions {
  /** NARs read at once (default 16). */
  readonly concurrency?: number
  /**
   * Every item's NAR is already in memory (small, its stream made by `narInMemory`): a layer may
   * check and write them one after another in one pass, with one flush and one registration.
   */
  readonly inMemory?: boolean
  /** Told when a path's NAR starts to be read. */
  readonly onStart?: (info: PathInfo) => void
  /** Told when a path is valid in the store (added, or found already valid). */
  readonly onAdded?: (info: PathInfo) => void
}

export interface StoreWriteApi {
  /**
   * Adds a path from its NAR. The NAR is validated, hashed and counted while it streams; if it does
   * not match `info.narHash`/`info.narSize` the path is rejected and nothing is left behind.
   * Adding a path that is already valid is a no-op.
   */
  readonly addToStore: <E, R>(info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>) => Effect.Effect<void, StoreError | E, R>
  /** Adds a file or tree from the file system as a content-addressed path (`nix-store --add[-fixed]`). */
  readonly addPath: (fsPath: string, options?: AddPathOptions) => Effect.Effect<PathInfo, StoreError>
  /** Adds a text file as `builtins.toFile` does. */
  readonly addText: (name: string, text: string | Uint8Array, references?: ReadonlyArray<StorePath.StorePath>) => Effect.Effect<PathInfo, StoreError>
  /**
   * Adds paths given in any order. Their NARs may be read at once, several together, but a path is
   * registered only once the paths it refers to are valid (those among `items` are registered first,
   * or in the same transaction); a path whose NAR fails, or whose reference failed, is never
   * registered. The first failure stops the rest; paths registered before it stay valid.
   */
  readonly addMultiple: <E, R>(items: ReadonlyArray<{ readonly info: PathInfo; readonly nar: Stream.Stream<Uint8Array, E, R> }>, options?: AddMultipleOptions) => Effect.Effect<void, StoreError | E, R>
  /**
   * Whether paths from elsewhere must carry a trusted signature (or a content address) to be added:
   * true for a local store, as Nix's `require-sigs`; a binary cache keeps what it is given.
   * Copying checks signatures by default only where the target requires them, as `nix copy` does.
   */
  readonly requiresSignatures?: boolean | undefined
  /** Adds signatures to a valid path's info. */
  readonly addSignatures: (path: StorePath.StorePath, signatures: ReadonlyArray<string>) => Effect.Effect<void, StoreError>
  /**
   * Records a realisation (its output path must be valid, and the realisations it depends on
   * known); one that is already there gains the new signatures. A store that keeps none lacks it.
   */
  readonly registerRealisation?: (realisation: Realisation.Realisation) => Effect.Effect<void, StoreError>
}

export class StoreWrite extends Context.Service<StoreWrite, StoreWriteApi>()("b3/StoreWrite") {}
