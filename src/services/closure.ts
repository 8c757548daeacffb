/** Closures and closure order over any `StoreRead`. */
import { Effect, Result } from "effect"
import * as StorePath from "../core/store-path.ts"
import type { PathInfo } from "../core/path-info.ts"
import { ReferenceCycle, type StoreError } from "./store-errors.ts"
import { StoreRead } from "./store-read.ts"

export interface ClosureOptions {
  /** `forward` (what the paths need: references) or `reverse` (what needs them: referrers). */
  readonly direction?: "forward" | "reverse"
  /** How many path-info queries may run at once (for network stores). */
  readonly concurrency?: number
}

/**
 * All paths reachable from `paths` (including them) in the store of the context, breadth first
 * with bounded concurrency. Forward closures fail with PathNotValid if any member is missing.
 */
export const computeClosure = (
  paths: ReadonlyArray<StorePath.StorePath>,
  options: ClosureOptions = {}
): Effect.Effect<ReadonlyArray<StorePath.StorePath>, StoreError, StoreRead> => Effect.gen(function*() {
  const store = yield* StoreRead
  const seen = new Map<string, StorePath.StorePath>()
  let frontier = paths.filter((p) => {
    const key = StorePath.baseName(p)
    if (seen.has(key)) return false
    seen.set(key, p)
    return true
  })
  const next = options.direction === "reverse"
    ? (p: StorePath.StorePath) => store.queryReferrers(p)
    : (p: StorePath.StorePath) => Effect.map(store.queryPathInfo(p), (info) => info.references)
  while (frontier.length > 0) {
    const found = yield* Effect.forEach(frontier, next, { concurrency: options.concurrency ?? 16 })
    frontier = []
    for (const refs of found) {
      for (const ref of refs) {
        const key = StorePath.baseName(ref)
        if (!seen.has(key)) { seen.set(key, ref); frontier.push(ref) }
      }
    }
  }
  return [...seen.values()].sort(StorePath.compare)
})

/**
 * Orders path infos so that every path comes after the paths it refers to (self-references
 * ignored); references outside the given set are ignored. Ties keep a stable, sorted order. Paths
 * that refer to each other in a cycle cannot be ordered: a `ReferenceCycle` names one of them.
 */
export const topoSortInfos = (infos: ReadonlyArray<PathInfo>, storeDir: string = StorePath.defaultStoreDir): Result.Result<ReadonlyArray<PathInfo>, ReferenceCycle> => {
  const byKey = new Map(infos.map((i) => [StorePath.baseName(i.path), i]))
  const state = new Map<string, "visiting" | "done">()
  const out: Array<PathInfo> = []
  // Depth-first post-order with an explicit stack, so long reference chains cannot overflow.
  for (const root of [...byKey.keys()].sort()) {
    if (state.has(root)) continue
    const stack: Array<{ key: string; refs: ReadonlyArray<string>; next: number }> = []
    const push = (key: string) => {
      state.set(key, "visiting")
      const refs = byKey.get(key)!.references.map(StorePath.baseName).filter((r) => r !== key && byKey.has(r))
      stack.push({ key, refs, next: 0 })
    }
    push(root)
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!
      if (top.next < top.refs.length) {
        const ref = top.refs[top.next++]!
        const seen = state.get(ref)
        if (seen === "visiting") {
          return Result.fail(new ReferenceCycle({ path: `${storeDir}/${ref}`, referrer: `${storeDir}/${top.key}` }))
        }
        if (seen === undefined) push(ref)
      } else {
        stack.pop()
        state.set(top.key, "done")
        out.push(byKey.get(top.key)!)
      }
    }
  }
  return Result.succeed(out)
}
