/** Maintenance a store may offer (the local store does): checking contents and garbage collection. */
import { Context, type Effect } from "effect"
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
}

export interface StoreMaintenanceApi {
  readonly verify: (options?: { readonly onProgress?: (done: number, total: number) => void }) => Effect.Effect<VerifyReport, StoreError>
  readonly collectGarbage: (options?: { readonly dryRun?: boolean }) => Effect.Effect<GcResult, StoreError>
}

export class StoreMaintenance extends Context.Service<StoreMaintenance, StoreMaintenanceApi>()("b3/StoreMaintenance") {}
