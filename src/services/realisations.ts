/**
 * Realisations over any store (`ca-derivations`): looking one up where a store may keep none,
 * recording one, and copying realisations with the realisations they depend on, as Nix's
 * `copyPaths` does for derivation outputs.
 */
import { Effect, Option } from "effect"
import * as Realisation from "../core/realisation.ts"
import * as StorePath from "../core/store-path.ts"
import { Unsupported, type StoreError } from "./store-errors.ts"
import type { StoreReadApi } from "./store-read.ts"
import type { StoreWriteApi } from "./store-write.ts"

/** The store's realisation of `id`; none if the store keeps no realisations. */
export const queryRealisation = (store: StoreReadApi, id: Realisation.DrvOutput): Effect.Effect<Option.Option<Realisation.Realisation>, StoreError> =>
  store.queryRealisation ? store.queryRealisation(id) : Effect.succeed(Option.none())

/** Whether the store can record realisations. */
export const keepsRealisations = (store: StoreWriteApi): boolean => store.registerRealisation !== undefined

export const registerRealisation = (store: { readonly read: StoreReadApi; readonly write: StoreWriteApi }, r: Realisation.Realisation): Effect.Effect<void, StoreError> =>
  store.write.registerRealisation
    ? store.write.registerRealisation(r)
    : Effect.fail(new Unsupported({ store: store.read.uri, operation: "recording realisations of content-addressed derivation outputs" }))

/**
 * The realisations `roots` depend on, themselves included, dependencies first (`Realisation::closure`);
 * fails with `PathNotValid`-like Unsupported when a dependency is not in the store.
 */
export const realisationClosure = (
  store: StoreReadApi,
  roots: ReadonlyArray<Realisation.Realisation>
): Effect.Effect<ReadonlyArray<Realisation.Realisation>, StoreError> => Effect.gen(function*() {
  const seen = new Map<string, Realisation.Realisation>()
  const order: Array<Realisation.Realisation> = []
  const visit = (r: Realisation.Realisation): Effect.Effect<void, StoreError> => Effect.gen(function*() {
    const key = Realisation.printDrvOutput(r.id)
    if (seen.has(key)) return
    seen.set(key, r)
    for (const depKey of r.dependentRealisations.keys()) {
      if (seen.has(depKey)) continue
      const id = Realisation.parseDrvOutput(depKey)
      if (id._tag === "Failure") return yield* new Unsupported({ store: store.uri, operation: `reading the realisation '${depKey}'` })
      const dep = yield* queryRealisation(store, id.success)
      if (Option.isNone(dep)) return yield* new Unsupported({ store: store.uri, operation: `finding the realisation '${depKey}' that '${key}' depends on (unrealised derivation)` })
      yield* visit(dep.value)
    }
    order.push(r)
  })
  for (const r of roots) yield* visit(r)
  return order
})

/** The output paths of these realisations. */
export const realisationPaths = (realisations: ReadonlyArray<Realisation.Realisation>): ReadonlyArray<StorePath.StorePath> =>
  StorePath.uniqueSorted(realisations.map((r) => r.outPath))
