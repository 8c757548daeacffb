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
  readonly deleted: ReadonlyArray<string>
  readonly bytesFreed: number
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

export interface StoreMaintenanceApi {
  readonly verify: (options?: { readonly onProgress?: (done: number, total: number) => void }) => Effect.Effect<VerifyReport, StoreError>
  readonly collectGarbage: (options?: { readonly dryRun?: boolean }) => Effect.Effect<GcResult, StoreError>
  /** Removes valid paths (refused for a path that a path not being deleted refers to). */
  readonly deletePaths?: (paths: ReadonlyArray<StorePath.StorePath>) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Rewrites storage units whose live fraction is low (a chunk store's packs). */
  readonly repack?: (options?: { readonly dryRun?: boolean }) => Effect.Effect<RepackResult, StoreError>
  /** Sizes and counts, by name (a chunk store: logical and stored bytes, dedup ratio, packs, live fraction). */
  readonly stats?: () => Effect.Effect<Readonly<Record<string, number>>, StoreError>
}

export class StoreMaintenance extends Context.Service<StoreMaintenance, StoreMaintenanceApi>()("b3/StoreMaintenance") {}
