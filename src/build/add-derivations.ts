/**
 * Writing `.drv` files into a store as Nix does (text paths whose references are the derivation's
 * input sources and input derivations), inputs first, checking that each lands at the path it was
 * declared with.
 */
import { Effect, Result } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as StorePath from "../core/store-path.ts"
import { BuildFailed } from "../services/store-build.ts"
import type { StoreError } from "../services/store-error.ts"
import type { StoreWriteApi } from "../services/store-write.ts"

const invalid = (drvPath: string, reason: string) => new BuildFailed({ drvPath, reason: `invalid derivation: ${reason}`, logTail: "" })

/** Adds one `.drv` (its inputs must be valid already) and gives its store path. */
export const addDrvFile = (
  write: StoreWriteApi,
  storeDir: string,
  file: Derivation.DrvFile
): Effect.Effect<StorePath.StorePath, StoreError | BuildFailed> => Effect.gen(function*() {
  const { drvPath, aterm } = file
  const name = Derivation.nameFromDrvPath(drvPath)
  const drv = Derivation.parse(aterm, { name, storeDir, source: drvPath })
  if (Result.isFailure(drv)) return yield* invalid(drvPath, drv.failure.message)
  const references: Array<StorePath.StorePath> = []
  for (const path of [...drv.success.inputSrcs, ...drv.success.inputDrvs.keys()]) {
    const parsed = StorePath.parse(path, storeDir)
    if (Result.isFailure(parsed)) return yield* invalid(drvPath, parsed.failure.message)
    references.push(parsed.success)
  }
  const info = yield* write.addText(name + Derivation.drvExtension, aterm, references)
  const added = StorePath.print(info.path, storeDir)
  if (added !== drvPath) return yield* invalid(drvPath, `its contents give the path '${added}' (was it made for another store directory?)`)
  return info.path
})

/** Adds `.drv` files in the given order (inputs first, as `drvFileClosure` gives them). */
export const addDrvFiles = (write: StoreWriteApi, storeDir: string, files: ReadonlyArray<Derivation.DrvFile>) =>
  Effect.forEach(files, (file) => addDrvFile(write, storeDir, file))
