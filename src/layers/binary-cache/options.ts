/** Binary-cache options from a store URI, spelled as Nix spells them. */
import { Effect, Result } from "effect"
import { readFileSync } from "node:fs"
import * as Signature from "../../core/signature.ts"
import { BadStoreUri } from "../../services/store-errors.ts"
import { checkParams, type StoreUri } from "../../services/store-uri.ts"
import type { BinaryCacheOptions } from "./binary-cache-store.ts"
import { compressions, isCompression } from "../../io/compression.ts"

export const binaryCacheParams = ["compression", "secret-key", "parallel-compression", "write-nar-listing", "store", "negative-ttl"] as const

const truthy = (value: string | null) => value === "1" || value === "true"

export const parseBinaryCacheOptions = (uri: StoreUri, extraParams: ReadonlyArray<string> = []): Effect.Effect<BinaryCacheOptions, BadStoreUri> =>
  Effect.gen(function*() {
    const bad = (reason: string) => new BadStoreUri({ uri: uri.raw, reason })
    yield* Effect.fromResult(checkParams(uri, [...binaryCacheParams, ...extraParams]))
    const compression = uri.params.get("compression") ?? "xz"
    if (!isCompression(compression)) return yield* bad(`unknown compression '${compression}' (use ${compressions.join(", ")})`)
    const secretKeys: Array<Signature.SecretKey> = []
    const keyFile = uri.params.get("secret-key")
    if (keyFile) {
      const text = yield* Effect.try({ try: () => readFileSync(keyFile, "utf8").trim(), catch: () => bad(`cannot read secret key file '${keyFile}'`) })
      const key = Signature.parseSecretKey(text)
      if (Result.isFailure(key)) return yield* bad(`secret key file '${keyFile}': ${key.failure.reason}`)
      secretKeys.push(key.success)
    }
    const storeDir = uri.params.get("store")
    const ttl = uri.params.get("negative-ttl")
    return {
      compression,
      secretKeys,
      parallelCompression: truthy(uri.params.get("parallel-compression")),
      writeNarListing: truthy(uri.params.get("write-nar-listing")),
      ...(storeDir ? { storeDir } : {}),
      ...(ttl && /^[0-9]+$/.test(ttl) ? { negativeTtlMs: Number(ttl) * 1000 } : {})
    }
  })
