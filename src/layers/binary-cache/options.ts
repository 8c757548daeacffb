/** Binary-cache options from a store URI, spelled as Nix spells them. */
import { Effect } from "effect"
import { BadStoreUri } from "../../services/store-errors.ts"
import { checkParams, flagOption, secretKeysOption, storeDirOption, type StoreUri } from "../../services/store-uri.ts"
import type { BinaryCacheOptions } from "./binary-cache-store.ts"
import { compressions, isCompression } from "../../io/compression.ts"

export const binaryCacheParams = ["compression", "secret-key", "parallel-compression", "write-nar-listing", "store", "negative-ttl", "priority"] as const

export const parseBinaryCacheOptions = (uri: StoreUri, extraParams: ReadonlyArray<string> = []): Effect.Effect<BinaryCacheOptions, BadStoreUri> =>
  Effect.gen(function*() {
    const bad = (reason: string) => new BadStoreUri({ uri: uri.raw, reason })
    yield* Effect.fromResult(checkParams(uri, [...binaryCacheParams, ...extraParams]))
    const compression = uri.params.get("compression") ?? "xz"
    if (!isCompression(compression)) return yield* bad(`unknown compression '${compression}' (use ${compressions.join(", ")})`)
    const secretKeys = yield* Effect.fromResult(secretKeysOption(uri))
    const storeDir = storeDirOption(uri)
    const ttl = uri.params.get("negative-ttl")
    const priority = uri.params.get("priority") ?? undefined
    if (priority !== undefined && !/^-?[0-9]{1,9}$/.test(priority)) return yield* bad(`priority must be an integer, not '${priority}'`)
    return {
      compression,
      secretKeys,
      parallelCompression: flagOption(uri, "parallel-compression"),
      writeNarListing: flagOption(uri, "write-nar-listing"),
      ...(storeDir ? { storeDir } : {}),
      ...(ttl && /^[0-9]+$/.test(ttl) ? { negativeTtlMs: Number(ttl) * 1000 } : {}),
      ...(priority !== undefined ? { priority: Number(priority) } : {})
    }
  })
