/** Between a cache's `.narinfo` and the store services' `PathInfo`. */
import { Result } from "effect"
import type * as Hash from "../core/hash.ts"
import * as NarInfo from "../core/narinfo.ts"
import * as StorePath from "../core/store-path.ts"
import type { PathInfo } from "../core/path-info.ts"
import { sortReferences } from "../core/path-info.ts"

export const toPathInfo = (info: NarInfo.NarInfo, storeDir: string): Result.Result<PathInfo, NarInfo.InvalidNarInfo> => {
  const bad = (reason: string) => Result.fail(new NarInfo.InvalidNarInfo({ input: info.storePath, reason }))
  const path = StorePath.parse(info.storePath, storeDir)
  if (Result.isFailure(path)) return bad(path.failure.reason)
  const references: Array<StorePath.StorePath> = []
  for (const ref of info.references) {
    const parsed = StorePath.parseBaseName(ref)
    if (Result.isFailure(parsed)) return bad(`reference ${parsed.failure.message}`)
    references.push(parsed.success)
  }
  let deriver: StorePath.StorePath | undefined
  if (info.deriver !== undefined && info.deriver !== "unknown-deriver") {
    const parsed = StorePath.parseBaseName(info.deriver)
    if (Result.isFailure(parsed)) return bad(`deriver ${parsed.failure.message}`)
    deriver = parsed.success
  }
  return Result.succeed({
    path: path.success,
    narHash: info.narHash,
    narSize: info.narSize,
    references: sortReferences(references),
    deriver,
    signatures: info.sigs,
    ca: info.ca
  })
}

export interface NarFile {
  readonly url: string
  readonly compression: string
  /** Unknown for a NAR compressed on the fly (both are optional in Nix's format). */
  readonly fileHash?: Hash.Hash | undefined
  readonly fileSize?: number | undefined
}

export const fromPathInfo = (info: PathInfo, file: NarFile, storeDir: string): NarInfo.NarInfo => ({
  storePath: StorePath.print(info.path, storeDir),
  url: file.url,
  compression: file.compression,
  ...(file.fileHash !== undefined ? { fileHash: file.fileHash } : {}),
  ...(file.fileSize !== undefined ? { fileSize: file.fileSize } : {}),
  narHash: info.narHash,
  narSize: info.narSize,
  references: info.references.map(StorePath.baseName),
  ...(info.deriver ? { deriver: StorePath.baseName(info.deriver) } : {}),
  sigs: info.signatures,
  ...(info.ca ? { ca: info.ca } : {})
})
