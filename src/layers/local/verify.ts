/**
 * `verify`: re-hashes every valid path's contents against the database (like
 * `nix-store --verify --check-contents`) and reports what is missing or changed.
 */
import { Effect, Result } from "effect"
import { join } from "node:path"
import * as Hash from "../../core/hash.ts"
import * as StorePath from "../../core/store-path.ts"
import { narDigestOfPath } from "../../nar/fs/index.ts"
import type { StoreDatabase } from "./database.ts"
import type { LocalStoreLayout } from "./layout.ts"
import type { VerifyProblem, VerifyReport } from "../../services/store-maintenance.ts"


export const verifyStore = (
  layout: LocalStoreLayout,
  db: StoreDatabase,
  options: { readonly onProgress?: (done: number, total: number) => void } = {}
): Effect.Effect<VerifyReport> => Effect.gen(function*() {
  const paths = db.allValidPaths()
  const problems: Array<VerifyProblem> = []
  let done = 0
  for (const path of paths) {
    const parsed = StorePath.parse(path, layout.storeDir)
    const row = Result.isSuccess(parsed) ? db.queryPathInfo(parsed.success) : undefined
    if (!row || Result.isFailure(row)) {
      problems.push({ path, problem: "bad-row", detail: row && Result.isFailure(row) ? row.failure.reason : "unparsable path" })
      continue
    }
    const info = row.success
    const physical = join(layout.realStoreDir, StorePath.baseName(info.path))
    const outcome = yield* Effect.result(narDigestOfPath(physical, info.narHash.algorithm))
    if (Result.isFailure(outcome)) {
      const missing = outcome.failure._tag === "FileNotFound"
      problems.push({ path, problem: missing ? "missing" : "unreadable", detail: outcome.failure.message })
    } else {
      const { hash: actual, size } = outcome.success
      if (!Hash.equals(actual, info.narHash)) {
        problems.push({ path, problem: "hash-mismatch", detail: `expected ${Hash.print(info.narHash, "base32")}, got ${Hash.print(actual, "base32")}` })
      } else if (size !== info.narSize && info.narSize !== 0) {
        problems.push({ path, problem: "size-mismatch", detail: `expected ${info.narSize}, got ${size}` })
      }
    }
    options.onProgress?.(++done, paths.length)
  }
  return { checked: paths.length, problems }
})
