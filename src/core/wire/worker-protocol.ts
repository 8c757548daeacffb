/**
 * Nix's worker protocol (the daemon socket: `unix://`, `daemon`), version 1.34 as Nix 2.8 speaks it:
 * constants, and the encodings of the values ops exchange (path infos, derivations, build results,
 * stderr messages). Decoders return the fields as sent (strings); `validate*` functions then turn
 * them into typed values, so that a bad value costs one op, never the connection's framing.
 */
import { Result } from "effect"
import * as ContentAddress from "../content-address.ts"
import * as Derivation from "../derivation/index.ts"
import * as Hash from "../hash.ts"
import * as StorePath from "../store-path.ts"
import { bool, bytes, fail, list, limits, string, strings, u64, u64Clamped, uint, type Decoder } from "./decoder.ts"
import { WireWriter } from "./encoder.ts"
import { WireMalformed } from "./errors.ts"
import type { PathInfo } from "../path-info.ts"

export const WORKER_MAGIC_1 = 0x6e697863
export const WORKER_MAGIC_2 = 0x6478696f
/** 1.34, Nix 2.8's. */
export const PROTOCOL_VERSION = (1 << 8) | 34
/** The oldest client this side talks to (Nix refuses below 1.10 too). */
export const MIN_CLIENT_VERSION = 0x10a
export const protocolMajor = (v: number) => v & 0xff00
export const protocolMinor = (v: number) => v & 0x00ff

export const Op = {
  IsValidPath: 1, HasSubstitutes: 3, QueryPathHash: 4, QueryReferences: 5, QueryReferrers: 6, AddToStore: 7,
  AddTextToStore: 8, BuildPaths: 9, EnsurePath: 10, AddTempRoot: 11, AddIndirectRoot: 12, SyncWithGC: 13,
  FindRoots: 14, ExportPath: 16, QueryDeriver: 18, SetOptions: 19, CollectGarbage: 20,
  QuerySubstitutablePathInfo: 21, QueryDerivationOutputs: 22, QueryAllValidPaths: 23, QueryFailedPaths: 24,
  ClearFailedPaths: 25, QueryPathInfo: 26, ImportPaths: 27, QueryDerivationOutputNames: 28,
  QueryPathFromHashPart: 29, QuerySubstitutablePathInfos: 30, QueryValidPaths: 31, QuerySubstitutablePaths: 32,
  QueryValidDerivers: 33, OptimiseStore: 34, VerifyStore: 35, BuildDerivation: 36, AddSignatures: 37,
  NarFromPath: 38, AddToStoreNar: 39, QueryMissing: 40, QueryDerivationOutputMap: 41, RegisterDrvOutput: 42,
  QueryRealisation: 43, AddMultipleToStore: 44, AddBuildLog: 45, BuildPathsWithResults: 46
} as const

export const opName = (op: number): string => Object.entries(Op).find(([, v]) => v === op)?.[0] ?? `op ${op}`

export const Stderr = {
  Next: 0x6f6c6d67, Read: 0x64617461, Write: 0x64617416, Last: 0x616c7473, Error: 0x63787470,
  StartActivity: 0x53545254, StopActivity: 0x53544f50, Result: 0x52534c54
} as const

export const Verbosity = { Error: 0, Warn: 1, Notice: 2, Info: 3, Talkative: 4, Chatty: 5, Debug: 6, Vomit: 7 } as const

export const ActivityType = {
  Unknown: 0, CopyPath: 100, FileTransfer: 101, Realise: 102, CopyPaths: 103, Builds: 104, Build: 105,
  OptimiseStore: 106, VerifyPaths: 107, Substitute: 108, QueryPathInfo: 109, PostBuildHook: 110, BuildWaiting: 111
} as const

export const ResultType = {
  FileLinked: 100, BuildLogLine: 101, UntrustedPath: 102, CorruptedPath: 103, SetPhase: 104, Progress: 105,
  SetExpected: 106, PostBuildLogLine: 107
} as const

export const BuildMode = { Normal: 0, Repair: 1, Check: 2 } as const

export const BuildStatus = {
  Built: 0, Substituted: 1, AlreadyValid: 2, PermanentFailure: 3, InputRejected: 4, OutputRejected: 5,
  TransientFailure: 6, CachedFailure: 7, TimedOut: 8, MiscFailure: 9, DependencyFailed: 10, LogLimitExceeded: 11,
  NotDeterministic: 12, ResolvesToAlreadyValid: 13, NoSubstituters: 14
} as const

export const GcAction = { ReturnLive: 0, ReturnDead: 1, DeleteDead: 2, DeleteSpecific: 3 } as const

// ---------------------------------------------------------------------------------------------
// Store paths and path infos

export const maxPathLength = 4096

// (the decoders themselves, not decoders around them: one generator less per path read)
export function storePathString(what = "a store path"): Decoder<string> {
  return string(what, maxPathLength)
}

export function storePathStrings(what = "store paths"): Decoder<Array<string>> {
  return strings(what, limits.listLength, maxPathLength)
}

const malformed = (reason: string) => new WireMalformed({ reason })

export const parsePath = (s: string, storeDir: string): Result.Result<StorePath.StorePath, WireMalformed> => {
  const path = StorePath.parse(s, storeDir)
  return Result.isFailure(path) ? Result.fail(malformed(path.failure.message)) : Result.succeed(path.success)
}

export const parsePaths = (list: ReadonlyArray<string>, storeDir: string): Result.Result<Array<StorePath.StorePath>, WireMalformed> => {
  const out: Array<StorePath.StorePath> = []
  for (const s of list) {
    const r = parsePath(s, storeDir)
    if (Result.isFailure(r)) return Result.fail(r.failure)
    out.push(r.success)
  }
  return Result.succeed(out)
}

/** A ValidPathInfo as sent, fields unparsed. */
export interface RawPathInfo {
  readonly deriver: string
  readonly narHash: string
  readonly references: ReadonlyArray<string>
  readonly registrationTime: number
  readonly narSize: number
  readonly ultimate: boolean
  readonly sigs: ReadonlyArray<string>
  readonly ca: string
}

/** ValidPathInfo::read without the path (format = the peer's minor version; 16+ has ultimate, sigs, ca). */
export function* rawPathInfo(minor: number): Decoder<RawPathInfo> {
  const deriver = yield* storePathString("a deriver")
  const narHash = yield* string("a NAR hash", 256)
  const references = yield* storePathStrings("references")
  const registrationTime = yield* u64("a registration time")
  const narSize = yield* u64("a NAR size")
  if (minor < 16) return { deriver, narHash, references, registrationTime, narSize, ultimate: false, sigs: [], ca: "" }
  const ultimate = yield* bool("the ultimate flag")
  const sigs = yield* strings("signatures", limits.smallList, 1024)
  const ca = yield* string("a content address", 1024)
  return { deriver, narHash, references, registrationTime, narSize, ultimate, sigs, ca }
}

/** Turns a sent path info into a PathInfo for `path`. (Plain code, not `Result.gen`: a daemon runs it for every path it is sent.) */
export const validatePathInfo = (path: StorePath.StorePath, raw: RawPathInfo, storeDir: string): Result.Result<PathInfo, WireMalformed> => {
  const narHash = Hash.parse(raw.narHash, "sha256")
  if (Result.isFailure(narHash)) return Result.fail(malformed(narHash.failure.message))
  const references = parsePaths(raw.references, storeDir)
  if (Result.isFailure(references)) return Result.fail(references.failure)
  const deriver = raw.deriver === "" ? undefined : parsePath(raw.deriver, storeDir)
  if (deriver !== undefined && Result.isFailure(deriver)) return Result.fail(deriver.failure)
  const ca = raw.ca === "" ? undefined : ContentAddress.parse(raw.ca)
  if (ca !== undefined && Result.isFailure(ca)) return Result.fail(malformed(ca.failure.message))
  const refs = references.success
  const sorted = refs.length === 0 ? refs : [...new Map(refs.map((r) => [StorePath.baseName(r), r])).values()].sort(StorePath.compare)
  return Result.succeed({
    path, narHash: narHash.success, narSize: raw.narSize, references: sorted, deriver: deriver?.success,
    signatures: raw.sigs.length === 0 ? [] : [...new Set(raw.sigs)].sort(), ca: ca?.success,
    ...(raw.registrationTime > 0 ? { registrationTime: raw.registrationTime } : {}),
    ...(raw.ultimate ? { ultimate: true } : {})
  })
}

export const writePaths = (w: WireWriter, paths: ReadonlyArray<StorePath.StorePath>, storeDir: string): WireWriter => {
  const sorted = [...paths].sort(StorePath.compare)
  w.u64(sorted.length)
  for (const p of sorted) w.string(StorePath.print(p, storeDir))
  return w
}

/** ValidPathInfo::write. */
export const writePathInfo = (w: WireWriter, info: PathInfo, storeDir: string, minor: number, includePath: boolean): WireWriter => {
  if (includePath) w.string(StorePath.print(info.path, storeDir))
  w.string(info.deriver ? StorePath.print(info.deriver, storeDir) : "")
  w.string(Hash.encode(info.narHash, "base16"))
  writePaths(w, info.references, storeDir)
  w.u64(info.registrationTime ?? 0).u64(info.narSize)
  if (minor >= 16) {
    w.bool(info.ultimate ?? false)
    w.strings([...info.signatures].sort())
    w.string(info.ca ? ContentAddress.print(info.ca) : "")
  }
  return w
}

// ---------------------------------------------------------------------------------------------
// Derived paths and build results

export type DerivedPath =
  | { readonly _tag: "Opaque"; readonly path: StorePath.StorePath }
  | { readonly _tag: "Built"; readonly drvPath: StorePath.StorePath; readonly outputs: ReadonlyArray<string> }

/** `path`, `drv!out1,out2` or `drv!*` (empty outputs: all). Old clients send `drv` alone for all outputs. */
export const parseDerivedPath = (s: string, storeDir: string): Result.Result<DerivedPath, WireMalformed> => {
  const bang = s.indexOf("!")
  if (bang < 0) return Result.map(parsePath(s, storeDir), (path) => ({ _tag: "Opaque" as const, path }))
  const outs = s.slice(bang + 1)
  return Result.map(parsePath(s.slice(0, bang), storeDir), (drvPath) => ({
    _tag: "Built" as const, drvPath, outputs: outs === "*" || outs === "" ? [] : [...new Set(outs.split(",").filter((o) => o !== ""))].sort()
  }))
}

export const printDerivedPath = (d: DerivedPath, storeDir: string): string =>
  d._tag === "Opaque" ? StorePath.print(d.path, storeDir)
    : `${StorePath.print(d.drvPath, storeDir)}!${d.outputs.length === 0 ? "*" : d.outputs.join(",")}`

export interface BuildResultWire {
  readonly path: string
  readonly status: number
  readonly errorMsg: string
  readonly timesBuilt: number
  readonly isNonDeterministic: boolean
  readonly startTime: number
  readonly stopTime: number
  /** DrvOutput id (`sha256:<hex>!out`) → Realisation JSON. */
  readonly builtOutputs: ReadonlyArray<readonly [string, string]>
}

/** A Realisation as Nix 2.8 sends it: JSON with the output path's base name. */
export const realisationJson = (id: string, outPath: StorePath.StorePath): string =>
  JSON.stringify({ id, outPath: StorePath.baseName(outPath), signatures: [], dependentRealisations: {} })

export const drvOutputId = (drvHash: Hash.Hash, output: string): string => `sha256:${Hash.encode(drvHash, "base16")}!${output}`

export const writeBuildOutputs = (w: WireWriter, outputs: ReadonlyArray<readonly [string, string]>): WireWriter => {
  const sorted = [...outputs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  w.u64(sorted.length)
  for (const [id, json] of sorted) w.string(id).string(json)
  return w
}

export const writeBuildResult = (w: WireWriter, r: BuildResultWire): WireWriter => {
  w.string(r.path).u64(r.status).string(r.errorMsg).u64(r.timesBuilt).bool(r.isNonDeterministic).u64(r.startTime).u64(r.stopTime)
  return writeBuildOutputs(w, r.builtOutputs)
}

export function* buildOutputs(): Decoder<Array<readonly [string, string]>> {
  return yield* list("built outputs", limits.smallList, function*() {
    const id = yield* string("a derivation output id", 1024)
    const json = yield* string("a realisation", limits.shortString)
    return [id, json] as const
  })
}

export function* buildResult(): Decoder<BuildResultWire> {
  const path = yield* string("a derived path", maxPathLength * 2)
  const status = yield* uint("a build status")
  const errorMsg = yield* string("an error message", limits.longString)
  const timesBuilt = yield* uint("times built")
  const isNonDeterministic = yield* bool()
  const startTime = yield* u64("a start time")
  const stopTime = yield* u64("a stop time")
  const builtOutputs = yield* buildOutputs()
  return { path, status, errorMsg, timesBuilt, isNonDeterministic, startTime, stopTime, builtOutputs }
}

/** The outPath of a Realisation's JSON, if it has one. */
export const realisationOutPath = (json: string, storeDir: string): StorePath.StorePath | undefined => {
  try {
    const parsed = JSON.parse(json) as { outPath?: unknown }
    if (typeof parsed.outPath !== "string") return undefined
    const r = parsed.outPath.startsWith("/") ? StorePath.parse(parsed.outPath, storeDir) : StorePath.parseBaseName(parsed.outPath)
    return Result.isSuccess(r) ? r.success : undefined
  } catch { return undefined }
}

// ---------------------------------------------------------------------------------------------
// Derivations as BuildDerivation sends them (a BasicDerivation: no input derivations)

export interface RawDerivation {
  readonly outputs: ReadonlyArray<readonly [string, string, string, string]>
  readonly inputSrcs: ReadonlyArray<string>
  readonly platform: string
  readonly builder: string
  readonly args: ReadonlyArray<string>
  readonly env: ReadonlyArray<readonly [string, string]>
}

export function* rawDerivation(): Decoder<RawDerivation> {
  const outputs = yield* list("derivation outputs", limits.smallList, function*() {
    const name = yield* string("an output name", 1024)
    const path = yield* storePathString("an output path")
    const hashAlgo = yield* string("an output hash algorithm", 64)
    const hash = yield* string("an output hash", 1024)
    return [name, path, hashAlgo, hash] as const
  })
  const inputSrcs = yield* storePathStrings("input sources")
  const platform = yield* string("a platform", 1024)
  const builder = yield* string("a builder", limits.shortString)
  const args = yield* strings("builder arguments", limits.smallList, limits.longString)
  const env = yield* list("environment variables", limits.smallList, function*() {
    const key = yield* string("a variable name", limits.shortString)
    const value = yield* string("a variable value", limits.longString)
    return [key, value] as const
  })
  return { outputs, inputSrcs, platform, builder, args, env }
}

const parseOutput = (path: string, hashAlgo: string, hash: string, storeDir: string): Result.Result<Derivation.DerivationOutput, WireMalformed> => {
  const checkPath = (p: string) => Result.map(parsePath(p, storeDir), () => p)
  if (hashAlgo === "") {
    if (hash !== "") return Result.fail(malformed("an output with a hash must name its hash algorithm"))
    return path === "" ? Result.succeed(Derivation.deferred) : Result.map(checkPath(path), Derivation.inputAddressed)
  }
  if (hashAlgo.startsWith("text:")) return Result.fail(malformed("text-hashed derivation outputs are not supported"))
  const method = hashAlgo.startsWith("r:") ? "recursive" as const : "flat" as const
  const algorithm = method === "recursive" ? hashAlgo.slice(2) : hashAlgo
  if (!Hash.isHashAlgorithm(algorithm)) return Result.fail(malformed(`unknown hash algorithm '${algorithm}'`))
  if (hash === "impure") return Result.succeed(Derivation.impure(method, algorithm))
  if (hash === "") return Result.succeed(Derivation.floating(method, algorithm))
  return Result.flatMap(Result.mapError(Hash.decodeDigest(hash, hash, algorithm), (e) => malformed(e.message)),
    (h) => Result.map(checkPath(path), (p) => Derivation.fixed(p, method, h)))
}

/** A BasicDerivation as a b3 Derivation (no input derivations: its inputs are all sources). */
export const validateDerivation = (raw: RawDerivation, name: string, storeDir: string): Result.Result<Derivation.Derivation, WireMalformed> =>
  Result.gen(function*() {
    const outputs = new Map<string, Derivation.DerivationOutput>()
    for (const [outName, path, hashAlgo, hash] of raw.outputs) {
      if (outName === "" || outputs.has(outName)) return yield* Result.fail(malformed(`bad output name '${outName}'`))
      outputs.set(outName, yield* parseOutput(path, hashAlgo, hash, storeDir))
    }
    if (outputs.size === 0) return yield* Result.fail(malformed("a derivation must have at least one output"))
    for (const src of raw.inputSrcs) yield* parsePath(src, storeDir)
    return {
      name, outputs, inputDrvs: new Map(), inputSrcs: [...new Set(raw.inputSrcs)].sort(),
      system: raw.platform, builder: raw.builder, args: raw.args, env: new Map(raw.env)
    }
  })

export const writeDerivation = (w: WireWriter, drv: Derivation.Derivation, inputSrcs: ReadonlyArray<string>, storeDir: string): WireWriter => {
  const outputs = [...drv.outputs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  w.u64(outputs.length)
  for (const [name, o] of outputs) {
    w.string(name)
    if (o._tag === "InputAddressed") w.string(o.path).string("").string("")
    else if (o._tag === "Fixed") w.string(o.path).string(Derivation.methodAlgo(o.method, o.hash.algorithm)).string(Hash.encode(o.hash, "base16"))
    else if (o._tag === "Floating") w.string("").string(Derivation.methodAlgo(o.method, o.algorithm)).string("")
    else if (o._tag === "Impure") w.string("").string(Derivation.methodAlgo(o.method, o.algorithm)).string("impure")
    else w.string("").string("").string("")
  }
  void storeDir
  w.strings([...new Set(inputSrcs)].sort())
  w.string(drv.system).string(drv.builder).strings(drv.args)
  const env = [...drv.env].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  w.u64(env.length)
  for (const [k, v] of env) w.string(k).string(v)
  return w
}

// ---------------------------------------------------------------------------------------------
// SetOptions

export interface ClientSettings {
  readonly keepFailed: boolean
  readonly keepGoing: boolean
  readonly tryFallback: boolean
  readonly verbosity: number
  readonly maxBuildJobs: number
  readonly maxSilentTime: number
  readonly verboseBuild: boolean
  readonly buildCores: number
  readonly useSubstitutes: boolean
  readonly overrides: ReadonlyArray<readonly [string, string]>
}

export function* clientSettings(minor: number): Decoder<ClientSettings> {
  const keepFailed = yield* bool()
  const keepGoing = yield* bool()
  const tryFallback = yield* bool()
  const verbosity = yield* uint("a verbosity")
  const maxBuildJobs = yield* uint("max build jobs")
  const maxSilentTime = yield* u64("max silent time")
  yield* u64("useBuildHook (obsolete)")
  const verboseBuild = (yield* u64("verbose build")) === Verbosity.Error
  yield* u64("log type (obsolete)")
  yield* u64("print build trace (obsolete)")
  const buildCores = yield* uint("build cores")
  const useSubstitutes = yield* bool()
  const overrides = minor >= 12
    ? yield* list("settings", limits.smallList, function*() {
      const name = yield* string("a setting name", 1024)
      const value = yield* string("a setting value", limits.shortString)
      return [name, value] as const
    })
    : []
  return { keepFailed, keepGoing, tryFallback, verbosity, maxBuildJobs, maxSilentTime, verboseBuild, buildCores, useSubstitutes, overrides }
}

export const writeClientSettings = (w: WireWriter, s: ClientSettings): WireWriter => {
  w.bool(s.keepFailed).bool(s.keepGoing).bool(s.tryFallback).u64(s.verbosity).u64(s.maxBuildJobs).u64(s.maxSilentTime)
    .u64(1).u64(s.verboseBuild ? Verbosity.Error : Verbosity.Vomit).u64(0).u64(0).u64(s.buildCores).bool(s.useSubstitutes)
  w.u64(s.overrides.length)
  for (const [k, v] of s.overrides) w.string(k).string(v)
  return w
}

// ---------------------------------------------------------------------------------------------
// Stderr messages (daemon → client while an op runs)

export type Field = number | string

const writeFields = (w: WireWriter, fields: ReadonlyArray<Field>) => {
  w.u64(fields.length)
  for (const f of fields) {
    if (typeof f === "number") w.u64(0).u64(f)
    else w.u64(1).string(f)
  }
}

export const stderrNext = (w: WireWriter, msg: string) => w.u64(Stderr.Next).string(msg)
export const stderrLast = (w: WireWriter) => w.u64(Stderr.Last)

/** An error as Nix 2.8 sends it (1.26+: a structured Error; older: the message and an exit status). */
export const stderrError = (w: WireWriter, msg: string, minor: number, status = 1) => {
  w.u64(Stderr.Error)
  if (minor >= 26) w.string("Error").u64(Verbosity.Error).string("Error").string(msg).u64(0).u64(0)
  else w.string(msg).u64(status)
  return w
}

export const stderrStartActivity = (w: WireWriter, id: number, level: number, type: number, text: string, fields: ReadonlyArray<Field>, parent: number) => {
  w.u64(Stderr.StartActivity).u64(id).u64(level).u64(type).string(text)
  writeFields(w, fields)
  return w.u64(parent)
}

export const stderrStopActivity = (w: WireWriter, id: number) => w.u64(Stderr.StopActivity).u64(id)

export const stderrResult = (w: WireWriter, id: number, type: number, fields: ReadonlyArray<Field>) => {
  w.u64(Stderr.Result).u64(id).u64(type)
  writeFields(w, fields)
  return w
}

export type StderrMessage =
  | { readonly _tag: "Last" }
  | { readonly _tag: "Next"; readonly text: string }
  | { readonly _tag: "Error"; readonly message: string; readonly status: number }
  | { readonly _tag: "StartActivity"; readonly id: number; readonly level: number; readonly type: number; readonly text: string; readonly fields: ReadonlyArray<Field>; readonly parent: number }
  | { readonly _tag: "StopActivity"; readonly id: number }
  | { readonly _tag: "Result"; readonly id: number; readonly type: number; readonly fields: ReadonlyArray<Field> }
  | { readonly _tag: "Read"; readonly length: number }
  | { readonly _tag: "Write"; readonly data: Uint8Array }

function* fields(): Decoder<Array<Field>> {
  return yield* list("activity fields", limits.smallList, function*() {
    const type = yield* uint("a field type")
    if (type === 0) return yield* u64Clamped("an integer field")
    if (type === 1) return yield* string("a string field", limits.longString)
    return yield* failMalformed(`unknown activity field type ${type}`)
  })
}

function* failMalformed(reason: string): Decoder<never> { return yield* fail(malformed(reason)) }

/** One stderr message; `minor` is the daemon's protocol minor version. */
export function* stderrMessage(minor: number): Decoder<StderrMessage> {
  const tag = yield* u64Clamped("a message type")
  switch (tag) {
    case Stderr.Last: return { _tag: "Last" }
    case Stderr.Next: return { _tag: "Next", text: yield* string("a log message", limits.longString) }
    case Stderr.Error: {
      if (minor >= 26) {
        yield* string("an error type", 64)
        yield* u64("an error level")
        yield* string("an error name", 1024)
        const message = yield* string("an error message", limits.longString)
        yield* u64("an error position")
        const traces = yield* list("error traces", limits.smallList, function*() {
          yield* u64("a trace position")
          return yield* string("a trace", limits.longString)
        })
        return { _tag: "Error", message: [message, ...traces].join("\n"), status: 1 }
      }
      const message = yield* string("an error message", limits.longString)
      const status = yield* uint("an exit status")
      return { _tag: "Error", message, status }
    }
    case Stderr.StartActivity: {
      const id = yield* u64Clamped("an activity id")
      const level = yield* uint("a verbosity")
      const type = yield* uint("an activity type")
      const text = yield* string("an activity text", limits.longString)
      const fs = yield* fields()
      const parent = yield* u64Clamped("a parent activity id")
      return { _tag: "StartActivity", id, level, type, text, fields: fs, parent }
    }
    case Stderr.StopActivity: return { _tag: "StopActivity", id: yield* u64Clamped("an activity id") }
    case Stderr.Result: {
      const id = yield* u64Clamped("an activity id")
      const type = yield* uint("a result type")
      return { _tag: "Result", id, type, fields: yield* fields() }
    }
    case Stderr.Read: return { _tag: "Read", length: yield* u64("a read length") }
    case Stderr.Write: return { _tag: "Write", data: yield* bytes("written data", limits.longString) }
    default: return yield* failMalformed(`unknown message type 0x${tag.toString(16)} from the daemon`)
  }
}
