/** Trusted public keys and signing keys from CLI flags (and $B3_TRUSTED_PUBLIC_KEYS). */
import { Effect, Result } from "effect"
import { readFileSync } from "node:fs"
import * as Signature from "../core/signature.ts"
import { Flag } from "effect/cli"
import { configDefault } from "./config.ts"

export const trustedKeysFlag = Flag.String("trusted-public-keys").pipe(
  Flag.withDefault(configDefault((c) => c.trustedPublicKeys.join(" "))),
  Flag.withDescription("space-separated public keys 'name:base64' whose signatures are trusted (default: config 'trustedPublicKeys' or $B3_TRUSTED_PUBLIC_KEYS)")
)

export const parseTrustedKeys = (text: string): Effect.Effect<ReadonlyArray<Signature.PublicKey>, Signature.InvalidKey> =>
  Effect.forEach(text.split(/\s+/).filter((k) => k.length > 0), (k) => {
    const parsed = Signature.parsePublicKey(k)
    return Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(parsed.failure)
  })

export const readSecretKey = (file: string): Effect.Effect<Signature.SecretKey, Signature.InvalidKey> =>
  Effect.try({ try: () => readFileSync(file, "utf8").trim(), catch: () => new Signature.InvalidKey({ input: file, reason: "cannot read the secret key file" }) }).pipe(
    Effect.flatMap((text) => {
      const parsed = Signature.parseSecretKey(text)
      return Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(parsed.failure)
    }))
