/**
 * Ed25519 signing keys and detached signatures in Nix's formats:
 *
 * - secret key: `<name>:<base64 of 64 bytes = 32-byte seed ‖ 32-byte public key>` (libsodium's layout),
 * - public key: `<name>:<base64 of 32 bytes>`,
 * - signature:  `<key name>:<base64 of 64 bytes>`.
 *
 * Store path signatures sign the fingerprint `1;<store path>;<NAR hash as sha256:base32>;<NAR size>;
 * <comma-separated full reference paths>`. Ed25519 comes from node:crypto (pure computation);
 * only `generateSecretKey` uses randomness.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from "node:crypto"
import { Result, Schema } from "effect"
import * as Hash from "./hash.ts"

export class InvalidKey extends Schema.TaggedError<InvalidKey>()("InvalidKey", { input: Schema.String, reason: Schema.String }) {
  override get message() { return `invalid key '${this.input}': ${this.reason}` }
}

/** A signature that does not verify, or no signature by a trusted key. */
export class SignatureError extends Schema.TaggedError<SignatureError>()("SignatureError", { path: Schema.String, reason: Schema.String }) {
  override get message() { return `signature check failed for '${this.path}': ${this.reason}` }
}

export interface PublicKey {
  readonly name: string
  /** 32 bytes. */
  readonly key: Uint8Array
}

export interface SecretKey {
  readonly name: string
  /** 64 bytes: seed ‖ public key. */
  readonly key: Uint8Array
}

const spkiPrefix = Buffer.from("302a300506032b6570032100", "hex")
const pkcs8Prefix = Buffer.from("302e020100300506032b657004220420", "hex")

const publicKeyObject = (key: Uint8Array): KeyObject =>
  createPublicKey({ key: Buffer.concat([spkiPrefix, key]), format: "der", type: "spki" })
const privateKeyObject = (seed: Uint8Array): KeyObject =>
  createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: "der", type: "pkcs8" })

const rawPublicKey = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: "der", type: "spki" }).subarray(spkiPrefix.length))

const base64Re = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const toBase64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")

/** `name:base64` with a non-empty name and canonical base64 of `size` bytes. */
const splitKey = (input: string, size: number, what: string): Result.Result<{ name: string; key: Uint8Array }, InvalidKey> => {
  const text = input.trim()
  const colon = text.indexOf(":")
  const fail = (reason: string) => Result.fail(new InvalidKey({ input: what === "secret key" ? "<secret key>" : text, reason }))
  if (colon <= 0) return fail(`a ${what} is written '<name>:<base64>'`)
  const name = text.slice(0, colon)
  const data = text.slice(colon + 1)
  if (!base64Re.test(data)) return fail(`the ${what} is not valid base64`)
  const key = new Uint8Array(Buffer.from(data, "base64"))
  if (key.length !== size) return fail(`a ${what} has ${size} bytes, not ${key.length}`)
  return Result.succeed({ name, key })
}

export const parsePublicKey = (input: string): Result.Result<PublicKey, InvalidKey> => splitKey(input, 32, "public key")

export const parseSecretKey = (input: string): Result.Result<SecretKey, InvalidKey> =>
  Result.flatMap(splitKey(input, 64, "secret key"), (sk) => {
    const derived = rawPublicKey(createPublicKey(privateKeyObject(sk.key.subarray(0, 32))))
    return Buffer.from(derived).equals(sk.key.subarray(32))
      ? Result.succeed(sk)
      : Result.fail(new InvalidKey({ input: `${sk.name}:<secret>`, reason: "the public half of the secret key does not match its seed" }))
  })

export const printPublicKey = (key: PublicKey): string => `${key.name}:${toBase64(key.key)}`
export const printSecretKey = (key: SecretKey): string => `${key.name}:${toBase64(key.key)}`

/** A new random key pair (as `nix-store --generate-binary-cache-key` makes). */
export const generateSecretKey = (name: string): SecretKey => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519")
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(pkcs8Prefix.length)
  const key = new Uint8Array(64)
  key.set(seed, 0)
  key.set(rawPublicKey(publicKey), 32)
  return { name, key }
}

export const publicKeyOf = (secret: SecretKey): PublicKey => ({ name: secret.name, key: secret.key.slice(32) })

/** A detached signature `name:base64(64 bytes)` of `data`. */
export const signDetached = (secret: SecretKey, data: string | Uint8Array): string =>
  `${secret.name}:${toBase64(edSign(null, typeof data === "string" ? Buffer.from(data) : data, privateKeyObject(secret.key.subarray(0, 32))))}`

/**
 * Checks a detached signature against the trusted keys: the name of the key that made it, or
 * undefined if it is not by a trusted key, malformed, or does not verify.
 */
export const verifyDetached = (data: string | Uint8Array, signature: string, trusted: ReadonlyArray<PublicKey>): string | undefined => {
  const colon = signature.indexOf(":")
  if (colon <= 0) return undefined
  const name = signature.slice(0, colon)
  const sig64 = signature.slice(colon + 1)
  if (!base64Re.test(sig64)) return undefined
  const sig = Buffer.from(sig64, "base64")
  if (sig.length !== 64) return undefined
  const bytes = typeof data === "string" ? Buffer.from(data) : data
  for (const key of trusted) {
    if (key.name === name && edVerify(null, bytes, publicKeyObject(key.key), sig)) return name
  }
  return undefined
}

export interface PathInfoForSignature {
  /** Full store path. */
  readonly storePath: string
  readonly narHash: Hash.Hash
  readonly narSize: number
  /** Full store paths. */
  readonly references: ReadonlyArray<string>
}

/** `1;<path>;<sha256:base32 NAR hash>;<NAR size>;<refs,…>`, references sorted as Nix's StorePathSet. */
export const fingerprint = (info: PathInfoForSignature): string =>
  `1;${info.storePath};${Hash.print(info.narHash, "base32")};${info.narSize};${[...new Set(info.references)].sort().join(",")}`
