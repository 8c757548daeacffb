/**
 * Store URIs as Nix spells them: `local`, `local?root=/tmp/r`, a bare absolute path (a local
 * chroot store), `memory://`, `file:///dir?compression=xz`, `http(s)://host/path`, `s3://bucket?…`,
 * `ipfs://…`. Parsing only splits the URI; each layer reads its own options.
 */
import { Result } from "effect"
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
