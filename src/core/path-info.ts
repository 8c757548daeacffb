/** What a store knows about a valid path, as Nix's ValidPathInfo. */
import * as ContentAddress from "./content-address.ts"
import * as Hash from "./hash.ts"
import * as Signature from "./signature.ts"
import * as StorePath from "./store-path.ts"

export interface PathInfo {
  readonly path: StorePath.StorePath
  /** sha256 of the path's NAR serialisation. */
  readonly narHash: Hash.Hash
  readonly narSize: number
  /** Store paths this path refers to (may include itself), sorted. */
  readonly references: ReadonlyArray<StorePath.StorePath>
  readonly deriver?: StorePath.StorePath | undefined
  /** Signatures `keyname:base64` over the path's fingerprint. */
  readonly signatures: ReadonlyArray<string>
  readonly ca?: ContentAddress.ContentAddress | undefined
  /** Seconds since the epoch when the path became valid, where the store records it. */
  readonly registrationTime?: number | undefined
  /** Built locally (Nix's `ultimate` trust flag). */
  readonly ultimate?: boolean | undefined
}

export const sortReferences = (refs: ReadonlyArray<StorePath.StorePath>): ReadonlyArray<StorePath.StorePath> =>
  [...new Map(refs.map((r) => [StorePath.baseName(r), r])).values()].sort(StorePath.compare)

/** Nix's signature fingerprint of a path: `1;<path>;<narHash>;<narSize>;<reference paths>`. */
export const fingerprint = (info: PathInfo, storeDir: string): string =>
  Signature.fingerprint({
    storePath: StorePath.print(info.path, storeDir),
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references.map((r) => StorePath.print(r, storeDir))
  })

/** JSON as `nix path-info --json` prints one entry. */
export const toJson = (info: PathInfo, storeDir: string, closureSize?: number): Record<string, unknown> => ({
  path: StorePath.print(info.path, storeDir),
  narHash: Hash.print(info.narHash, "sri"),
  narSize: info.narSize,
  ...(closureSize === undefined ? {} : { closureSize }),
  references: info.references.map((r) => StorePath.print(r, storeDir)),
  ...(info.deriver ? { deriver: StorePath.print(info.deriver, storeDir) } : {}),
  ...(info.registrationTime === undefined ? {} : { registrationTime: info.registrationTime }),
  ...(info.ultimate ? { ultimate: true } : {}),
  ...(info.signatures.length > 0 ? { signatures: info.signatures } : {}),
  ...(info.ca ? { ca: ContentAddress.print(info.ca) } : {})
})
