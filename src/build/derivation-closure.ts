/**
 * Derivations made with b3's TypeScript derivation API ("b3/derivation"), into a store and built:
 * their whole `.drv` graph is written as Nix writes `.drv` files (inputs first), then realised.
 */
import { Effect, Result } from "effect"
import { addDrvFiles } from "./add-derivations.ts"
import * as Derivation from "../core/derivation/index.ts"
import type { DerivationHandle } from "../core/derivation/values.ts"
import * as StorePath from "../core/store-path.ts"
import { StoreBuild, type BuildOptions } from "../services/store-build.ts"
import { StoreRead } from "../services/store-read.ts"
import type { StoreWriteApi } from "../services/store-write.ts"
import { StoreWrite } from "../services/store-write.ts"

/** Writes the derivations and every derivation they need to the store; gives the roots' `.drv` paths. */
export const addDerivationClosure = (write: StoreWriteApi, storeDir: string, roots: ReadonlyArray<DerivationHandle>) => Effect.gen(function*() {
  const notHere = roots.find((d) => !d.drvPath.startsWith(storeDir + "/"))
  if (notHere) {
    return yield* new Derivation.InvalidDerivationArgs({ name: notHere.drvPath, attribute: "", reason: `it is not in the store directory ${storeDir}` })
  }
  yield* addDrvFiles(write, storeDir, yield* Effect.fromResult(Derivation.drvFileClosure(roots)))
  return roots.map((d) => StorePath.parse(d.drvPath, storeDir)).filter(Result.isSuccess).map((r) => r.success)
})

/** `addDerivationClosure` on the `StoreWrite` service: the derivations' `.drv` store paths. */
export const addDerivations = (roots: ReadonlyArray<DerivationHandle>) => Effect.gen(function*() {
  const read = yield* StoreRead
  return yield* addDerivationClosure(yield* StoreWrite, read.storeDir, roots)
})

/** Writes the derivations to the store and builds them (what is valid is skipped); the build results. */
export const buildDerivations = (roots: ReadonlyArray<DerivationHandle>, options?: BuildOptions) => Effect.gen(function*() {
  const drvPaths = yield* addDerivations(roots)
  return yield* (yield* StoreBuild).buildDerivations(drvPaths, options)
})
