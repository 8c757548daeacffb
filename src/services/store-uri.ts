/**
 * Store URIs as Nix spells them: `local`, `local?root=/tmp/r`, a bare absolute path (a local
 * chroot store), `memory://`, `file:///dir?compression=xz`, `http(s)://host/path`, `s3://bucket?…`,
 * `ipfs://…`. Parsing only splits the URI; each layer reads its own options, with the typed readers
 * below for those several layers share (keys, read-only, timeouts, the store dir).
 */
import { Result } from "effect"
import { readFileSync } from "node:fs"
import * as Signature from "../core/signature.ts"
import { BadStoreUri } from "./store-errors.ts"

export interface StoreUri {
  /** The URI as given. */
  readonly raw: string
  /** `local`, `memory`, `file`, `http`, `https`, `s3`, `ipfs`, or a plugin's scheme. */
  readonly scheme: string
  /** What follows `scheme://` up to `?` (host and path), or "" for `local`. */
  readonly location: string
  readonly params: URLSearchParams
}

const schemeRe = /^[a-z][a-z0-9+.-]*$/

export const parseStoreUri = (raw: string): Result.Result<StoreUri, BadStoreUri> => {
  const fail = (reason: string) => Result.fail(new BadStoreUri({ uri: raw, reason }))
  if (raw.length === 0) return fail("the store URI is empty")
  const q = raw.indexOf("?")
  const head = q >= 0 ? raw.slice(0, q) : raw
  const params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : "")
  if (head.startsWith("/")) {
    // A bare path is a local store rooted there, as in `nix --store /tmp/r`.
    params.set("root", head)
    return Result.succeed({ raw, scheme: "local", location: "", params })
  }
  const sep = head.indexOf("://")
  if (sep < 0) {
    if (!schemeRe.test(head)) return fail("expected 'local', an absolute path, or 'scheme://…'")
    return Result.succeed({ raw, scheme: head, location: "", params })
  }
  const scheme = head.slice(0, sep)
  if (!schemeRe.test(scheme)) return fail(`'${scheme}' is not a URI scheme`)
  return Result.succeed({ raw, scheme, location: head.slice(sep + 3), params })
}

/** The URI with secrets (secret-key file names are fine; credentials in the authority are not) removed, for messages. */
export const redactStoreUri = (raw: string): string => raw.replace(/\/\/[^/@?]*@/, "//***@")

/** Fails when the URI carries options the store does not know (a typo should not be ignored). */
export const checkParams = (uri: StoreUri, allowed: ReadonlyArray<string>): Result.Result<void, BadStoreUri> => {
  const unknown = [...uri.params.keys()].filter((k) => !allowed.includes(k))
  return unknown.length === 0
    ? Result.succeed(undefined)
    : Result.fail(new BadStoreUri({ uri: uri.raw, reason: `unknown option(s) ${unknown.join(", ")} (this store takes: ${allowed.join(", ") || "none"})` }))
}

const bad = (uri: StoreUri, reason: string) => new BadStoreUri({ uri: uri.raw, reason })

/**
 * A parameter's last value with %-escapes decoded but `+` kept: base64 keys are full of `+`, which
 * form decoding (URLSearchParams) would turn into spaces.
 */
const rawParam = (uri: StoreUri, name: string): string | undefined => {
  const query = uri.raw.includes("?") ? uri.raw.slice(uri.raw.indexOf("?") + 1) : ""
  const values = query.split("&").filter((kv) => kv.startsWith(`${name}=`)).map((kv) => kv.slice(name.length + 1))
  const last = values[values.length - 1]
  if (last === undefined) return undefined
  try { return decodeURIComponent(last) } catch { return last }
}

/** A boolean option, as Nix spells them: `1` or `true`. */
export const flagOption = (uri: StoreUri, name: string): boolean => {
  const value = uri.params.get(name)
  return value === "1" || value === "true"
}

/** `read-only=true|1`. */
export const readOnlyOption = (uri: StoreUri): boolean => flagOption(uri, "read-only")

/** The logical store dir (`store=/nix/store`), if given. */
export const storeDirOption = (uri: StoreUri): string | undefined => uri.params.get("store") || undefined

/** A positive number of seconds (e.g. `timeout=30`), if given. */
export const secondsOption = (uri: StoreUri, name: string): Result.Result<number | undefined, BadStoreUri> => {
  const value = uri.params.get(name)
  if (value === null) return Result.succeed(undefined)
  const seconds = Number(value)
  return seconds > 0 ? Result.succeed(seconds) : Result.fail(bad(uri, `${name} must be a positive number of seconds, not '${value}'`))
}

/** `secret-key=FILE`: the signing keys it names (none if absent). */
export const secretKeysOption = (uri: StoreUri): Result.Result<ReadonlyArray<Signature.SecretKey>, BadStoreUri> => {
  const file = uri.params.get("secret-key")
  if (!file) return Result.succeed([])
  let text: string
  try { text = readFileSync(file, "utf8").trim() } catch { return Result.fail(bad(uri, `cannot read secret key file '${file}'`)) }
  const key = Signature.parseSecretKey(text)
  return Result.isFailure(key) ? Result.fail(bad(uri, `secret key file '${file}': ${key.failure.reason}`)) : Result.succeed([key.success])
}

/** `trusted-public-keys='NAME:KEY …'`: undefined if absent (the store trusts nothing of its own). */
export const trustedKeysOption = (uri: StoreUri): Result.Result<ReadonlyArray<Signature.PublicKey> | undefined, BadStoreUri> => {
  const text = rawParam(uri, "trusted-public-keys")
  if (text === undefined) return Result.succeed(undefined)
  const keys: Array<Signature.PublicKey> = []
  for (const item of text.split(/\s+/).filter((k) => k !== "")) {
    const key = Signature.parsePublicKey(item)
    if (Result.isFailure(key)) return Result.fail(bad(uri, `trusted-public-keys: ${key.failure.reason}`))
    keys.push(key.success)
  }
  return Result.succeed(keys)
}
