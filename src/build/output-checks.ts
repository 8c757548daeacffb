/**
 * The checks a derivation asks of its outputs once they are built, as Nix 2.8's
 * `LocalDerivationGoal::checkOutputs` applies them: `allowedReferences`, `allowedRequisites`,
 * `disallowedReferences`, `disallowedRequisites` (store paths or output names), and with structured
 * attributes `outputChecks.<output>` with those and `maxSize`, `maxClosureSize`. A violation is an
 * `OutputRejected` worded as Nix's error.
 */
import { Effect, Result } from "effect"
import * as Parsed from "../core/derivation/parsed.ts"
import * as StorePath from "../core/store-path.ts"
import type { PathInfo } from "../core/path-info.ts"
import { InvalidDerivationAttribute, OutputRejected } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead } from "../services/store-read.ts"

/** Checks every output; `infos` are the outputs' final infos (not yet valid in the store). */
export const checkOutputs = (
  parsed: Parsed.ParsedDerivation,
  infos: ReadonlyMap<string, PathInfo>
): Effect.Effect<void, OutputRejected | InvalidDerivationAttribute | StoreError, StoreRead> => Effect.gen(function*() {
  const store = yield* StoreRead
  const storeDir = store.storeDir
  const print = (p: StorePath.StorePath) => StorePath.print(p, storeDir)
  const byPath = new Map([...infos.values()].map((info) => [StorePath.baseName(info.path), info]))

  /** The closure of a path and its size; other outputs of this build are not valid yet and come from `infos`. */
  const closureOf = (root: StorePath.StorePath) => Effect.gen(function*() {
    const done = new Map<string, StorePath.StorePath>()
    let size = 0n
    const queue = [root]
    while (queue.length > 0) {
      const path = queue.shift()!
      const key = StorePath.baseName(path)
      if (done.has(key)) continue
      done.set(key, path)
      const info = byPath.get(key) ?? (yield* store.queryPathInfo(path))
      size += BigInt(info.narSize)
      queue.push(...info.references)
    }
    return { paths: [...done.values()], size }
  })

  for (const [name, info] of infos) {
    const checks = yield* Effect.fromResult(Parsed.outputChecks(parsed, name))
    if (checks === undefined) continue
    const path = print(info.path)
    const reject = (reason: string) => new OutputRejected({ drvPath: parsed.drvPath, output: name, reason })
    if (checks.maxSize !== undefined && BigInt(info.narSize) > checks.maxSize) {
      return yield* reject(`path '${path}' is too large at ${info.narSize} bytes; limit is ${checks.maxSize} bytes`)
    }
    if (checks.maxClosureSize !== undefined) {
      const { size } = yield* closureOf(info.path)
      if (size > checks.maxClosureSize) return yield* reject(`closure of path '${path}' is too large at ${size} bytes; limit is ${checks.maxClosureSize} bytes`)
    }
    const check = (spec: ReadonlyArray<string> | undefined, allowed: boolean, recursive: boolean) => Effect.gen(function*() {
      if (spec === undefined) return
      const specified = new Set<string>()
      for (const s of spec) {
        const asPath = StorePath.parse(s, storeDir)
        if (Result.isSuccess(asPath)) specified.add(StorePath.baseName(asPath.success))
        else if (infos.has(s)) specified.add(StorePath.baseName(infos.get(s)!.path))
        else return yield* new InvalidDerivationAttribute({ drvPath: parsed.drvPath, reason: `derivation contains an illegal reference specifier '${s}'` })
      }
      let used = recursive ? (yield* closureOf(info.path)).paths : [...info.references]
      if (recursive && checks.ignoreSelfRefs) used = used.filter((p) => !StorePath.equals(p, info.path))
      const bad = StorePath.uniqueSorted(used.filter((p) => specified.has(StorePath.baseName(p)) !== allowed))
      if (bad.length > 0) {
        return yield* reject(`output '${path}' is not allowed to refer to the following paths:${bad.map((p) => `\n  ${print(p)}`).join("")}`)
      }
    })
    yield* check(checks.allowedReferences, true, false)
    yield* check(checks.allowedRequisites, true, true)
    yield* check(checks.disallowedReferences, false, false)
    yield* check(checks.disallowedRequisites, false, true)
  }
})
