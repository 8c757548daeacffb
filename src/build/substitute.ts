/**
 * Substitution: making paths valid in the store of the context by copying them, with their
 * closures, from substituters, as Nix does before building: a path is taken from the first
 * substituter that has it signed by a trusted key (or content-addressed); one that has it unsigned is
 * passed over with an `untrusted-substitute` event.
 */
import { Effect, Option } from "effect"
import * as StorePath from "../core/store-path.ts"
import { checkSignature, copyPaths } from "../services/copy.ts"
import type { BuildOptions } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead } from "../services/store-read.ts"
import { StoreWrite } from "../services/store-write.ts"

export type SubstituteOptions = Pick<BuildOptions, "substituters" | "trustedKeys" | "onEvent">

/**
 * Copies `paths` from the first substituter that has all of them, trusted; true if one had them.
 * `drvPath` names the derivation they are for in events.
 */
export const substituteAll = (
  paths: ReadonlyArray<StorePath.StorePath>,
  drvPath: string,
  options: SubstituteOptions
): Effect.Effect<boolean, StoreError, StoreRead | StoreWrite> => Effect.gen(function*() {
  const target = { read: yield* StoreRead, write: yield* StoreWrite }
  const storeDir = target.read.storeDir
  for (const substituter of options.substituters ?? []) {
    if (substituter.storeDir !== storeDir) continue
    const present = yield* Effect.orElseSucceed(substituter.queryValidPaths(paths), () => [])
    if (present.length !== paths.length) continue
    const untrusted = yield* Effect.findFirst(paths, (path) => Effect.flatMap(substituter.queryPathInfo(path),
      (info) => checkSignature(info, storeDir, options.trustedKeys ?? [])).pipe(Effect.isFailure))
    if (Option.isSome(untrusted)) {
      options.onEvent?.({ type: "untrusted-substitute", drvPath, from: substituter.uri, path: StorePath.print(untrusted.value, storeDir) })
      continue
    }
    options.onEvent?.({ type: "substituting", drvPath, from: substituter.uri })
    yield* copyPaths(substituter, target, paths, { checkSigs: true, trustedKeys: options.trustedKeys ?? [] })
    options.onEvent?.({ type: "substituted", drvPath, from: substituter.uri })
    return true
  }
  return false
})

/**
 * Makes valid what it can of `paths` (sources a derivation needs, say), each from the first
 * substituter that has it; gives the paths that are still not valid.
 */
export const substituteMissing = (
  paths: ReadonlyArray<StorePath.StorePath>,
  drvPath: string,
  options: SubstituteOptions
): Effect.Effect<ReadonlyArray<StorePath.StorePath>, StoreError, StoreRead | StoreWrite> => Effect.gen(function*() {
  const read = yield* StoreRead
  const valid = new Set((yield* read.queryValidPaths(paths)).map(StorePath.baseName))
  const missing = [...new Map(paths.filter((p) => !valid.has(StorePath.baseName(p))).map((p) => [StorePath.baseName(p), p])).values()]
  const still: Array<StorePath.StorePath> = []
  for (const path of missing) if (!(yield* substituteAll([path], drvPath, options))) still.push(path)
  return still
})


