/**
 * Writing `.drv` files into a store as Nix does (text paths whose references are the derivation's
 * input sources and input derivations), inputs first, checking that each lands at the path it was
 * declared with.
 */
import { Effect, Result } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as StorePath from "../core/store-path.ts"
import { BuildFailed } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import type { StoreWriteApi } from "../services/store-write.ts"

const invalid = (drvPath: string, reason: string) => new BuildFailed({ drvPath, reason: `invalid derivation: ${reason}`, logTail: "" })

/**
 * Adds `.drv` text as the derivation `name` (without `.drv`), its inputs (valid already) as its
 * references, and gives its store path. `source` names it in error messages.
 */
export const addDerivationText = (
  write: StoreWriteApi,
  storeDir: string,
  name: string,
  aterm: string,
  source: string
): Effect.Effect<StorePath.StorePath, StoreError | BuildFailed> => Effect.gen(function*() {
  const drv = Derivation.parse(aterm, { name, storeDir, source })
  if (Result.isFailure(drv)) return yield* invalid(source, drv.failure.message)
  const references: Array<StorePath.StorePath> = []
  for (const path of [...drv.success.inputSrcs, ...drv.success.inputDrvs.keys()]) {
    const parsed = StorePath.parse(path, storeDir)
    if (Result.isFailure(parsed)) return yield* invalid(source, parsed.failure.message)
    references.push(parsed.success)
  }
  return (yield* write.addText(name + Derivation.drvExtension, aterm, references)).path
})

/** Adds one `.drv` and checks that it lands at the path it was declared with. */
export const addDrvFile = (
  write: StoreWriteApi,
  storeDir: string,
  file: Derivation.DrvFile
): Effect.Effect<StorePath.StorePath, StoreError | BuildFailed> => Effect.gen(function*() {
  const { drvPath, aterm } = file
  const path = yield* addDerivationText(write, storeDir, Derivation.nameFromDrvPath(drvPath), aterm, drvPath)
  const added = StorePath.print(path, storeDir)
  if (added !== drvPath) return yield* invalid(drvPath, `its contents give the path '${added}' (was it made for another store directory?)`)
  return path
})

/** Adds `.drv` files in the given order (inputs first, as `drvFileClosure` gives them). */
export const addDrvFiles = (write: StoreWriteApi, storeDir: string, files: ReadonlyArray<Derivation.DrvFile>) =>
  Effect.forEach(files, (file) => addDrvFile(write, storeDir, file))
