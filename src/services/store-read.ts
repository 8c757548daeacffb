/**
 * `StoreRead`: everything a program can ask of any store, writable or not.
 * Binary caches, S3 and IPFS provide it; so do the local and in-memory stores.
 */
import { Context, type Effect, type Option, type Stream } from "effect"
import type * as Hash from "../core/hash.ts"
import type * as Realisation from "../core/realisation.ts"
import type * as StorePath from "../core/store-path.ts"
import type { StoreError } from "./store-errors.ts"
import type { PathInfo } from "../core/path-info.ts"

export interface StoreReadApi {
  /** The URI this store was opened from (for messages; never holds secrets). */
  readonly uri: string
  /** The logical store directory, e.g. `/nix/store`. */
  readonly storeDir: string
  /**
   * As a substituter, how preferred it is: lower first (Nix's `priority`; a binary cache takes it from
   * its `nix-cache-info` or `?priority=`). Stores without one count as 0.
   */
  readonly priority?: number
  readonly queryPathInfo: (path: StorePath.StorePath) => Effect.Effect<PathInfo, StoreError>
  readonly isValidPath: (path: StorePath.StorePath) => Effect.Effect<boolean, StoreError>
  /** The subset of `paths` that are valid, in the order given. */
  readonly queryValidPaths: (paths: ReadonlyArray<StorePath.StorePath>) => Effect.Effect<ReadonlyArray<StorePath.StorePath>, StoreError>
  /** The NAR serialisation of a valid path, streamed. */
  readonly narFromPath: (path: StorePath.StorePath) => Stream.Stream<Uint8Array, StoreError>
  readonly queryPathFromHashPart: (hashPart: string) => Effect.Effect<Option.Option<StorePath.StorePath>, StoreError>
  /** Valid paths that refer to `path`; stores that do not index referrers fail with `Unsupported`. */
  readonly queryReferrers: (path: StorePath.StorePath) => Effect.Effect<ReadonlyArray<StorePath.StorePath>, StoreError>
  /** Every valid path, where the store can list them (local and in-memory stores; binary caches cannot). */
  readonly queryAllValidPaths?: () => Effect.Effect<ReadonlyArray<StorePath.StorePath>, StoreError>
  /**
   * The NAR file exactly as the store keeps it (binary caches: possibly compressed), unverified, so
   * that a server can pass it on unchanged. Only stores that keep NAR files have it. `prefer`: the
   * compression the caller would like, for stores that can give it without recompressing (a chunk
   * store's zstd frames); others ignore it.
   */
  readonly storedNar?: (path: StorePath.StorePath, prefer?: string) => Effect.Effect<StoredNar, StoreError>
  /**
   * The NAR of a valid path fed to `consume` chunk by chunk, each chunk valid only until the promise
   * `consume` returns settles, so that the store can read into the same buffers again (no garbage
   * per chunk). For consumers that keep nothing (a server writing to a socket, a hasher). `consume`
   * stops the NAR early by resolving to `"stop"`. Stores that dump from disk offer it (reading little
   * ahead: a server runs many at once).
   */
  readonly forEachNarChunk?: (path: StorePath.StorePath, consume: (chunk: Uint8Array) => Promise<"stop" | undefined>) => Effect.Effect<void, StoreError>
  /**
   * The realisation of a derivation output (`ca-derivations`): which path it was built as. Stores
   * that keep realisations have it (local: the Realisations table; binary caches:
   * `realisations/<id>.doi`); see services/realisations.ts for stores that do not.
   */
  readonly queryRealisation?: (id: Realisation.DrvOutput) => Effect.Effect<Option.Option<Realisation.Realisation>, StoreError>
}

/** A NAR file as a binary cache keeps it. */
export interface StoredNar {
  /** As in a narinfo: none, xz, zstd, bzip2. */
  readonly compression: string
  readonly fileHash?: Hash.Hash | undefined
  readonly fileSize?: number | undefined
  readonly bytes: Stream.Stream<Uint8Array, StoreError>
  /** A local file with exactly these bytes, when the store keeps NARs as files (a server can send it directly). */
  readonly file?: string | undefined
  /**
   * The same bytes (as stored: compressed when `compression` says so) fed to `consume` piece by
   * piece, each valid only until the promise `consume` returns settles, so that the store can reuse
   * its buffers (a server writing to a socket); `consume` stops it by resolving to "stop".
   */
  readonly feed?: ((consume: (chunk: Uint8Array) => Promise<"stop" | undefined>) => Effect.Effect<void, StoreError>) | undefined
}

export class StoreRead extends Context.Service<StoreRead, StoreReadApi>()("b3/StoreRead") {}
