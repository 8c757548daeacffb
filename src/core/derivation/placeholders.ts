/**
 * Placeholders for output paths that are not known when a derivation is written:
 *
 * - `hashPlaceholder(output)` = `/` + nix-base32(sha256("nix-output:<output>")) — what
 *   `builtins.placeholder` returns, and what floating content-addressed derivations put in their
 *   own environment for their outputs; the builder sees it replaced by the real path.
 * - `downstreamPlaceholder(drvPath, output)` — what a derivation that depends on a floating
 *   content-addressed output sees in place of that output's (unknown) path.
 */
import * as Hash from "../hash.ts"
import * as StorePath from "../store-path.ts"
import { nameFromDrvPath } from "./types.ts"

export const hashPlaceholder = (outputName: string): string =>
  `/${Hash.encode(Hash.hashBytes("sha256", `nix-output:${outputName}`), "base32")}`

export const downstreamPlaceholder = (drvPath: string, outputName: string): string => {
  const base = drvPath.slice(drvPath.lastIndexOf("/") + 1)
  const hashPart = base.slice(0, StorePath.hashPartLength)
  const clearText = `nix-upstream-output:${hashPart}:${StorePath.outputPathName(nameFromDrvPath(drvPath), outputName)}`
  return `/${Hash.encode(Hash.hashBytes("sha256", clearText), "base32")}`
}
