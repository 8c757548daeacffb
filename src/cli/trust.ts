/** Trusted public keys and signing keys from CLI flags (and $B3_TRUSTED_PUBLIC_KEYS). */
import { Effect, Result } from "effect"
import * as Signature from "../core/signature.ts"
import { Flag } from "effect/cli"
import { configDefault } from "./config.ts"
import { maxSmallFileBytes, readBoundedString } from "../io/read-bounded.ts"

export const trustedKeysFlag = Flag.String("trusted-public-keys").pipe(
  Flag.withDefault(configDefault((c) => c.trustedPublicKeys.join(" "))),
  Flag.withDescription("space-separated public keys 'name:base64' whose signatures are trusted (default: config 'trustedPublicKeys' or $B3_TRUSTED_PUBLIC_KEYS)")
)

export const parseTrustedKeys = (text: string): Effect.Effect<ReadonlyArray<Signature.PublicKey>, Signature.InvalidKey> =>
  Effect.forEach(text.split(/\s+/).filter((k) => k.length > 0), (k) => {
    const parsed = Signature.parsePublicKey(k)
    return Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(parsed.failure)
  })

/** A secret key file (`--secret-key`, `--key-file`, `key public`), read with a size bound. */
export const readSecretKey = (file: string) =>
  readBoundedString(file, maxSmallFileBytes, "a secret key").pipe(
    Effect.catchTag("NarIoError", (e) => Effect.fail(new Signature.InvalidKey({ input: file, reason: `cannot read the secret key file: ${e.reason}` }))),
    Effect.flatMap((text) => {
      const parsed = Signature.parseSecretKey(text.trim())
      return Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(parsed.failure)
    }))
