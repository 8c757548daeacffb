/**
 * Substitution: making paths valid in the store of the context by copying them, with their
 * closures, from substituters, as Nix does before building: a path is taken from the most preferred
 * substituter (by priority, then the order given) that has it signed by a trusted key (or
 * content-addressed); one that has it unsigned is passed over with an `untrusted-substitute` event.
 * All substituters are asked at once.
 */
import { Effect, Fiber, Option } from "effect"
import * as StorePath from "../core/store-path.ts"
import { checkSignature, copyPaths } from "../services/copy.ts"
import type { BuildOptions } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead, type StoreReadApi } from "../services/store-read.ts"
import { StoreWrite } from "../services/store-write.ts"

export type SubstituteOptions = Pick<BuildOptions, "substituters" | "trustedKeys" | "onEvent">

/** What one substituter can do for a set of paths. */
type Offer =
  | { readonly _tag: "has" }
  | { readonly _tag: "lacks" }
  | { readonly _tag: "untrusted"; readonly path: StorePath.StorePath }

/**
 * The substituters in the order they are preferred: by priority (lower first; a binary cache's
 * comes from its `nix-cache-info` or `?priority=`, 0 when it has none), ties in the order given — as
 * Nix sorts `substituters`.
 */
export const byPriority = (substituters: ReadonlyArray<StoreReadApi>): ReadonlyArray<StoreReadApi> =>
  substituters.map((s, i) => ({ s, i })).sort((a, b) => (a.s.priority ?? 0) - (b.s.priority ?? 0) || a.i - b.i).map(({ s }) => s)

/** Whether `substituter` has all of `paths`, each signed by a trusted key or content-addressed. Failures to answer count as lacking. */
const offerOf = (substituter: StoreReadApi, paths: ReadonlyArray<StorePath.StorePath>, storeDir: string, options: SubstituteOptions): Effect.Effect<Offer> =>
  Effect.gen(function*() {
    const present = yield* substituter.queryValidPaths(paths)
    if (present.length !== paths.length) return { _tag: "lacks" } as const
    const checked = yield* Effect.forEach(paths, (path) => Effect.map(Effect.flatMap(substituter.queryPathInfo(path),
      (info) => checkSignature(info, storeDir, options.trustedKeys ?? [])).pipe(Effect.isFailure), (bad) => (bad ? [path] : [])), { concurrency: 16 })
    const untrusted = checked.flat()[0]
    return untrusted === undefined ? { _tag: "has" } as const : { _tag: "untrusted", path: untrusted } as const
  }).pipe(Effect.orElseSucceed((): Offer => ({ _tag: "lacks" })))

/**
 * Copies `paths` from the most preferred substituter that has all of them, trusted; true if one had
 * them. All substituters are asked at once (a distant one does not hold up the others), and the
 * answers are taken in order of preference: the first that has them wins as soon as every more
 * preferred one has answered that it lacks them; the questions still out are then dropped.
 * `drvPath` names the derivation they are for in events.
 */
export const substituteAll = (
  paths: ReadonlyArray<StorePath.StorePath>,
  drvPath: string,
  options: SubstituteOptions
): Effect.Effect<boolean, StoreError, StoreRead | StoreWrite> => Effect.gen(function*() {
  const target = { read: yield* StoreRead, write: yield* StoreWrite }
  const storeDir = target.read.storeDir
  const candidates = byPriority((options.substituters ?? []).filter((s) => s.storeDir === storeDir))
  if (candidates.length === 0) return false
  const chosen = yield* Effect.scoped(Effect.gen(function*() {
    const asked = yield* Effect.forEach(candidates, (s) => Effect.forkScoped(offerOf(s, paths, storeDir, options)))
    for (let i = 0; i < candidates.length; i++) {
      const offer = yield* Fiber.join(asked[i]!)
      if (offer._tag === "has") return Option.some(candidates[i]!)
      if (offer._tag === "untrusted") {
        options.onEvent?.({ type: "untrusted-substitute", drvPath, from: candidates[i]!.uri, path: StorePath.print(offer.path, storeDir) })
      }
    }
    return Option.none<StoreReadApi>()
  })) // leaving the scope interrupts the questions still out
  if (Option.isNone(chosen)) return false
  const substituter = chosen.value
  options.onEvent?.({ type: "substituting", drvPath, from: substituter.uri })
  yield* copyPaths(substituter, target, paths, { checkSigs: true, trustedKeys: options.trustedKeys ?? [] })
  options.onEvent?.({ type: "substituted", drvPath, from: substituter.uri })
  return true
})

/**
 * Makes valid what it can of `paths` (sources a derivation needs, say), each from the most preferred
 * substituter that has it, several at once; gives the paths that are still not valid.
 */
export const substituteMissing = (
  paths: ReadonlyArray<StorePath.StorePath>,
  drvPath: string,
  options: SubstituteOptions
): Effect.Effect<ReadonlyArray<StorePath.StorePath>, StoreError, StoreRead | StoreWrite> => Effect.gen(function*() {
  const read = yield* StoreRead
  const valid = new Set((yield* read.queryValidPaths(paths)).map(StorePath.baseName))
  const missing = [...new Map(paths.filter((p) => !valid.has(StorePath.baseName(p))).map((p) => [StorePath.baseName(p), p])).values()]
  if (missing.length === 0 || (options.substituters ?? []).length === 0) return missing
  const done = yield* Effect.forEach(missing, (path) => substituteAll([path], drvPath, options), { concurrency: 16 })
  return missing.filter((_, i) => !done[i])
})
