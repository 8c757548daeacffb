/**
 * Content addresses as Nix prints them in narinfo `CA:` fields and the database:
 * `text:sha256:<base32>`, `fixed:<algo>:<base32>` (flat) and `fixed:r:<algo>:<base32>` (recursive).
 */
import { Result } from "effect"
import { InvalidContentAddress } from "./errors.ts"
import * as Hash from "./hash.ts"
import * as StorePath from "./store-path.ts"

export type ContentAddress =
  | { readonly _tag: "Text"; readonly hash: Hash.Hash }
  | { readonly _tag: "Fixed"; readonly method: StorePath.FileIngestionMethod; readonly hash: Hash.Hash }

export const text = (hash: Hash.Hash): ContentAddress => ({ _tag: "Text", hash })
export const fixed = (method: StorePath.FileIngestionMethod, hash: Hash.Hash): ContentAddress => ({ _tag: "Fixed", method, hash })

/** The method-and-algorithm prefix, e.g. `r:sha256` or `sha1` (as in derivation `outputHashAlgo` fields). */
export const methodAlgo = (ca: ContentAddress): string =>
  ca._tag === "Text" ? `text:${ca.hash.algorithm}` : `${ca.method === "recursive" ? "r:" : ""}${ca.hash.algorithm}`

export const print = (ca: ContentAddress): string =>
  ca._tag === "Text"
    ? `text:${Hash.print(ca.hash, "base32")}`
    : `fixed:${ca.method === "recursive" ? "r:" : ""}${Hash.print(ca.hash, "base32")}`

const fail = (input: string, reason: string) => Result.fail(new InvalidContentAddress({ input, reason }))

export const parse = (input: string): Result.Result<ContentAddress, InvalidContentAddress> => {
  const hashOf = (rest: string) =>
    Result.mapError(Hash.parse(rest), (e) => new InvalidContentAddress({ input, reason: e.reason }))
  if (input.startsWith("text:")) {
    return Result.flatMap(hashOf(input.slice(5)), (hash) =>
      hash.algorithm === "sha256" ? Result.succeed(text(hash)) : fail(input, "text content addresses use sha256"))
  }
  if (input.startsWith("fixed:r:")) {
    // (plain code, not Result.map: every path `nix-store --add` made and a daemon is sent comes this way)
    const hash = Hash.parse(input.slice(8))
    return Result.isFailure(hash) ? fail(input, hash.failure.reason) : Result.succeed(fixed("recursive", hash.success))
  }
  if (input.startsWith("fixed:")) return Result.map(hashOf(input.slice(6)), (hash) => fixed("flat", hash))
  return fail(input, "expected 'text:sha256:…', 'fixed:<algo>:…' or 'fixed:r:<algo>:…'")
}

/** The store path a content-addressed object with this address, name and references has. */
export const storePath = (
  ca: ContentAddress,
  name: string,
  options: { readonly references?: ReadonlyArray<StorePath.StorePath>; readonly hasSelfReference?: boolean; readonly storeDir?: string } = {}
): StorePath.StorePath =>
  ca._tag === "Text"
    ? StorePath.makeText(name, ca.hash, options.references ?? [], options.storeDir)
    : StorePath.makeFixedOutput(ca.method, ca.hash, name, options)
