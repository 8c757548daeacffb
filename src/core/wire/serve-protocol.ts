/**
 * Nix's serve protocol (`nix-store --serve`, spoken over ssh by `ssh://` stores and remote
 * builders), version 2.7 as Nix 2.8 speaks it. Values are encoded as in the worker protocol;
 * NARs travel bare (their end is found from their structure, or from narSize in AddToStoreNar).
 */
import * as Hash from "../hash.ts"
import * as ContentAddress from "../content-address.ts"
import * as StorePath from "../store-path.ts"
import { bool, limits, string, strings, u64, uint, type Decoder } from "./decoder.ts"
import { WireWriter } from "./encoder.ts"
import { storePathString, storePathStrings, writePaths } from "./worker-protocol.ts"
import type { PathInfo } from "../path-info.ts"

export const SERVE_MAGIC_1 = 0x390c9deb
export const SERVE_MAGIC_2 = 0x5452eecb
/** 2.7, Nix 2.8's. */
export const SERVE_PROTOCOL_VERSION = (2 << 8) | 7

export const Command = {
  QueryValidPaths: 1, QueryPathInfos: 2, DumpStorePath: 3, ImportPaths: 4, ExportPaths: 5, BuildPaths: 6,
  QueryClosure: 7, BuildDerivation: 8, AddToStoreNar: 9
} as const

export interface BuildSettings {
  readonly maxSilentTime: number
  readonly buildTimeout: number
  readonly maxLogSize: number
  readonly buildRepeat: number
  readonly enforceDeterminism: boolean
  readonly keepFailed: boolean
}

/** The build settings that follow BuildPaths and BuildDerivation (fields depend on the client's minor version). */
export function* buildSettings(minor: number): Decoder<BuildSettings> {
  const maxSilentTime = yield* u64("max silent time")
  const buildTimeout = yield* u64("build timeout")
  const maxLogSize = minor >= 2 ? yield* u64("max log size") : 0
  const buildRepeat = minor >= 3 ? yield* uint("build repeat") : 0
  const enforceDeterminism = minor >= 3 ? yield* bool() : false
  const keepFailed = minor >= 7 ? yield* bool() : false
  return { maxSilentTime, buildTimeout, maxLogSize, buildRepeat, enforceDeterminism, keepFailed }
}

export const writeBuildSettings = (w: WireWriter, s: BuildSettings, minor: number): WireWriter => {
  w.u64(s.maxSilentTime).u64(s.buildTimeout)
  if (minor >= 2) w.u64(s.maxLogSize)
  if (minor >= 3) w.u64(s.buildRepeat).bool(s.enforceDeterminism)
  if (minor >= 7) w.bool(s.keepFailed)
  return w
}

export const defaultBuildSettings: BuildSettings = { maxSilentTime: 0, buildTimeout: 0, maxLogSize: 0, buildRepeat: 0, enforceDeterminism: false, keepFailed: false }

/** One entry of QueryPathInfos' reply (2.4+: with the NAR hash, content address and signatures). */
export const writeServePathInfo = (w: WireWriter, info: PathInfo, storeDir: string, minor: number): WireWriter => {
  w.string(StorePath.print(info.path, storeDir))
  w.string(info.deriver ? StorePath.print(info.deriver, storeDir) : "")
  writePaths(w, info.references, storeDir)
  w.u64(info.narSize).u64(info.narSize)
  if (minor >= 4) {
    w.string(Hash.print(info.narHash, "base32"))
    w.string(info.ca ? ContentAddress.print(info.ca) : "")
    w.strings([...info.signatures].sort())
  }
  return w
}

export interface RawServePathInfo {
  readonly path: string
  readonly deriver: string
  readonly references: ReadonlyArray<string>
  readonly downloadSize: number
  readonly narSize: number
  readonly narHash: string
  readonly ca: string
  readonly sigs: ReadonlyArray<string>
}

/** One entry of QueryPathInfos' reply, or undefined at the empty string that ends the list. */
export function* servePathInfo(minor: number): Decoder<RawServePathInfo | undefined> {
  const path = yield* storePathString()
  if (path === "") return undefined
  const deriver = yield* storePathString("a deriver")
  const references = yield* storePathStrings("references")
  const downloadSize = yield* u64("a download size")
  const narSize = yield* u64("a NAR size")
  if (minor < 4) return { path, deriver, references, downloadSize, narSize, narHash: "", ca: "", sigs: [] }
  const narHash = yield* string("a NAR hash", 256)
  const ca = yield* string("a content address", 1024)
  const sigs = yield* strings("signatures", limits.smallList, 1024)
  return { path, deriver, references, downloadSize, narSize, narHash, ca, sigs }
}
