/** Puts a freshly built output into canonical form (see src/layers/local/canonicalise.ts). */
import { Effect } from "effect"
import { canonicalise as canonicaliseTree } from "../../io/canonicalise.ts"
import { CanonicaliseFailed } from "./errors.ts"

export { canonicalMode } from "../../io/canonicalise.ts"

/** Canonicalises an output in place. */
export const canonicalise = (path: string): Effect.Effect<void, CanonicaliseFailed> =>
  Effect.try({
    try: () => canonicaliseTree(path),
    catch: (e) => new CanonicaliseFailed({ path, reason: String(e) })
  })
