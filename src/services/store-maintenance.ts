/**
 * Maintenance a store may offer (the local store does): checking contents and garbage collection;
 * a chunk store also deletes paths, repacks and reports its space.
 */
import { Context, type Effect } from "effect"
import type * as StorePath from "../core/store-path.ts"
import type { StoreError } from "./store-errors.ts"

export interface VerifyProblem {
  readonly path: string
  readonly problem: "missing" | "hash-mismatch" | "size-mismatch" | "unreadable" | "bad-row"
  readonly detail: string
}

export interface VerifyReport {
  readonly checked: number
  readonly problems: ReadonlyArray<VerifyProblem>
}

export interface GcResult {
  readonly roots: ReadonlyArray<string>
  /** The dead paths: deleted, or with `dryRun` those that would be. */
  readonly deleted: ReadonlyArray<string>
  readonly bytesFreed: number
  /** The valid paths the roots keep alive. */
  readonly live?: ReadonlyArray<string> | undefined
  /** A chunk store's GC: what its repack did. */
  readonly repack?: RepackResult
}

export interface RepackResult {
  readonly dryRun: boolean
  /** Packs rewritten without their garbage, and packs deleted whole (nothing in them was kept). */
  readonly packsRewritten: number
  readonly packsDeleted: number
  /** Bytes kept and copied into the rewritten packs. */
  readonly bytesCopied: number
  readonly bytesFreed: number
}

export interface GcOptions {
  /** Only find out what is live and dead; delete nothing. */
  readonly dryRun?: boolean
  /** Delete only these paths (and their dead referrers); fails if one is alive. */
  readonly paths?: ReadonlyArray<string>
  /** More roots (store paths), e.g. a daemon's clients' temporary roots. */
  readonly extraRoots?: ReadonlyArray<string>
  /**
   * Whether this process's own temporary roots count (default true). A daemon serving many clients
   * from one process passes false and gives its clients' roots as `extraRoots` instead, as Nix's
   * daemon, whose temporary roots live and die with each client's connection.
   */
  readonly ownTempRoots?: boolean
}

/** What hard-linking identical files did (Nix's OptimiseStats). */
export interface OptimiseResult {
  readonly filesLinked: number
  /** Bytes of the files replaced by links (what Nix reports as freed). */
  readonly bytesFreed: number
  readonly blocksFreed: number
}

/** A GC root: the link (or `{temp:PID}` for a temporary root) and the store path it keeps. */
export interface GcRoot {
  readonly link: string
  readonly target: string
}

export interface StoreMaintenanceApi {
  readonly verify: (options?: { readonly onProgress?: (done: number, total: number) => void }) => Effect.Effect<VerifyReport, StoreError>
  readonly collectGarbage: (options?: GcOptions) => Effect.Effect<GcResult, StoreError>
  /** Removes valid paths (refused for a path that a path not being deleted refers to). */
  readonly deletePaths?: (paths: ReadonlyArray<StorePath.StorePath>) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Rewrites storage units whose live fraction is low (a chunk store's packs). */
  readonly repack?: (options?: { readonly dryRun?: boolean }) => Effect.Effect<RepackResult, StoreError>
  /** Sizes and counts, by name (a chunk store: logical and stored bytes, dedup ratio, packs, live fraction). */
  readonly stats?: () => Effect.Effect<Readonly<Record<string, number>>, StoreError>
  /**
   * The roots with the links that make them roots, running processes' paths included (their
   * places in /proc, or `{censored}` with `censor`, what Nix tells clients that are not trusted).
   */
  readonly findRoots?: (options?: { readonly censor?: boolean }) => Effect.Effect<ReadonlyArray<GcRoot>, StoreError>
  /**
   * Hard-links identical files (Nix's `nix-store --optimise`): of the whole store, or only of
   * `paths` (what `auto-optimise-store` does for new paths). `warn` gets what Nix prints as warnings.
   */
  readonly optimise?: (options?: {
    readonly paths?: ReadonlyArray<string>
    readonly warn?: (message: string) => void
  }) => Effect.Effect<OptimiseResult, StoreError>
  /** Registers `link` (a symlink outside the store, like `result`) as an indirect root. */
  readonly addIndirectRoot?: (link: string) => Effect.Effect<void, StoreError>
  /** Every valid path. */
  readonly allValidPaths?: () => Effect.Effect<ReadonlyArray<string>, StoreError>
  /**
   * Drops this process's temporary roots (a daemon does when no client is connected: its clients'
   * roots end with their connections, as with Nix's daemon).
   */
  readonly releaseTempRoots?: () => Effect.Effect<void, StoreError>
  /** Starts now what the store would start on its first write (a daemon does before it accepts clients). */
  readonly prepareForClients?: () => Effect.Effect<void>
  /** The valid derivations that have `path` as an output. */
  readonly validDerivers?: (path: string) => Effect.Effect<ReadonlyArray<string>, StoreError>
}

export class StoreMaintenance extends Context.Service<StoreMaintenance, StoreMaintenanceApi>()("b3/StoreMaintenance") {}
