/**
 * The worker-protocol ops, each as Nix 2.8's daemon reads its arguments and writes its reply
 * (daemon.cc `performOp`), over whatever services the store offers.
 */
import { Effect, Fiber, Option, Result, Stream } from "effect"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as ContentAddress from "../../core/content-address.ts"
import * as Derivation from "../../core/derivation/index.ts"
import * as Hash from "../../core/hash.ts"
import * as StorePath from "../../core/store-path.ts"
import { Wire, Worker } from "../../core/wire/index.ts"
import { WireWriter } from "../../core/wire/encoder.ts"
import type { Decoder } from "../../core/wire/decoder.ts"
import { WireTruncated, type WireMalformed } from "../../core/wire/errors.ts"
import { NarBoundary } from "../../core/wire/nar-boundary.ts"
import * as Tree from "../../nar/tree.ts"
import { readFileStream } from "../../io/file-stream.ts"
import { loadDerivationGraph, readDerivation, staticOutputHashes } from "../../build/derivation-graph.ts"
import * as Realisation from "../../core/realisation.ts"
import { queryRealisation as realisationOf, registerRealisation } from "../../services/realisations.ts"
import { StoreRead } from "../../services/store-read.ts"
import { checkSignature } from "../../services/copy.ts"
import { withContentAddressCheck } from "../../services/verified-nar.ts"
import { fingerprint, type PathInfo } from "../../core/path-info.ts"
import * as Signature from "../../core/signature.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import type { BuildEvent, BuildOptions } from "../../services/store-build.ts"
import type { StoreWriteApi } from "../../services/store-write.ts"
import { andThenNow, toIoError, type FramedReader, type WireIoError } from "../../io/wire-io.ts"
import { narInMemory } from "../../nar/check.ts"
import { OpFailed, messageOf, type Conn } from "./connection.ts"

type Handler = (c: Conn) => Effect.Effect<void, unknown>

const read = <A>(c: Conn, d: Decoder<A>) => c.reader.run(d)

/** A malformed value from a client, as the error its op reports. */
const malformedOp = (e: WireMalformed) => new OpFailed({ message: e.reason })

const valid = <A>(r: Result.Result<A, WireMalformed>): Effect.Effect<A, OpFailed> =>
  Result.isSuccess(r) ? Effect.succeed(r.success) : Effect.fail(malformedOp(r.failure))

const storePath = (c: Conn, s: string) => valid(Worker.parsePath(s, c.storeDir))
const storePaths = (c: Conn, s: ReadonlyArray<string>) => valid(Worker.parsePaths(s, c.storeDir))
const print = (c: Conn, p: StorePath.StorePath) => StorePath.print(p, c.storeDir)

const reply = (c: Conn, f: (w: WireWriter) => void): void => {
  const w = new WireWriter()
  f(w)
  c.sink.push(w.take())
}

const fail = (message: string) => Effect.fail(new OpFailed({ message }))

const needWrite = (c: Conn): Effect.Effect<StoreWriteApi, OpFailed> =>
  c.backend.write ? Effect.succeed(c.backend.write) : fail(`store '${c.backend.read.uri}' is read-only`)

const needTrusted = (c: Conn, what: string): Effect.Effect<void, OpFailed> =>
  c.options.trusted ? Effect.void : fail(`you are not privileged to ${what}`)

const maintenance = (c: Conn, what: string) =>
  c.backend.maintenance ? Effect.succeed(c.backend.maintenance) : fail(`store '${c.backend.read.uri}' does not support ${what}`)

/** Runs the op's work with the stderr channel open; closes it with LAST on success. */
const work = <A, E>(c: Conn, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    c.tunnel.startWork()
    return Effect.tap(effect, () => Effect.sync(() => c.tunnel.stopWork()))
  })

const writePathSet = (c: Conn, paths: ReadonlyArray<StorePath.StorePath>) => reply(c, (w) => Worker.writePaths(w, paths, c.storeDir))

const onePath = (c: Conn) => Effect.flatMap(read(c, Worker.storePathString()), (s) => storePath(c, s))

/** A boolean setting as Nix parses one (`true`/`yes`/`1`, `false`/`no`/`0`), else undefined. */
const boolSetting = (value: string | undefined): boolean | undefined =>
  value === "true" || value === "yes" || value === "1" ? true : value === "false" || value === "no" || value === "0" ? false : undefined

/** Whether new paths are hard-linked to identical files (`auto-optimise-store`: the daemon's, or a trusted client's). */
const autoOptimising = (c: Conn): boolean => {
  return boolSetting(trustedOverride(c, "auto-optimise-store")) ?? c.options.autoOptimiseStore ?? false
}

/** With `auto-optimise-store`, hard-links the files of new paths to identical ones (Nix's optimisePath after adding or building). */
const autoOptimise = (c: Conn, paths: ReadonlyArray<string>) => Effect.suspend(() => {
  const optimise = c.backend.maintenance?.optimise
  if (!optimise || paths.length === 0 || !autoOptimising(c)) return Effect.void
  return Effect.asVoid(optimise({ paths: [...new Set(paths)], warn: (m) => c.tunnel.log(`warning: ${m}`, Worker.Verbosity.Warn) }))
})

// ---------------------------------------------------------------------------------------------
// queries

const isValidPath: Handler = (c) => Effect.gen(function*() {
  const s = yield* read(c, Worker.storePathString())
  const valid = yield* work(c, Effect.flatMap(storePath(c, s), c.backend.read.isValidPath))
  reply(c, (w) => w.bool(valid))
})

const queryValidPaths: Handler = (c) => Effect.gen(function*() {
  const list = yield* read(c, Worker.storePathStrings())
  if (c.minor >= 27) yield* read(c, Wire.bool("the substitute flag"))
  const valid = yield* work(c, Effect.flatMap(storePaths(c, list), c.backend.read.queryValidPaths))
  writePathSet(c, valid)
})

const hasSubstitutes: Handler = (c) => Effect.gen(function*() {
  yield* read(c, Worker.storePathString())
  yield* work(c, Effect.void)
  reply(c, (w) => w.bool(false))
})

const querySubstitutablePaths: Handler = (c) => Effect.gen(function*() {
  yield* read(c, Worker.storePathStrings())
  yield* work(c, Effect.void)
  reply(c, (w) => w.u64(0))
})

const querySubstitutablePathInfo: Handler = (c) => Effect.gen(function*() {
  yield* read(c, Worker.storePathString())
  yield* work(c, Effect.void)
  reply(c, (w) => w.u64(0))
})

const querySubstitutablePathInfos: Handler = (c) => Effect.gen(function*() {
  if (c.minor < 22) yield* read(c, Worker.storePathStrings())
  else yield* read(c, Wire.list("paths", Wire.limits.listLength, function*() {
    yield* Worker.storePathString()
    yield* Wire.string("a content address", 1024)
  }))
  yield* work(c, Effect.void)
  reply(c, (w) => w.u64(0))
})

const queryPathInfo: Handler = (c) => Effect.gen(function*() {
  const s = yield* read(c, Worker.storePathString())
  const info: Option.Option<PathInfo> = yield* work(c, Effect.flatMap(storePath(c, s), (p) => {
    const found = Effect.map(c.backend.read.queryPathInfo(p), Option.some)
    return c.minor >= 17 ? found.pipe(Effect.catchTag("PathNotValid", () => Effect.succeed(Option.none<PathInfo>()))) : found
  }))
  reply(c, (w) => {
    if (Option.isNone(info)) { w.bool(false); return }
    if (c.minor >= 17) w.bool(true)
    Worker.writePathInfo(w, info.value, c.storeDir, c.minor, false)
  })
})

const queryPathHash: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  const info = yield* work(c, c.backend.read.queryPathInfo(p))
  reply(c, (w) => w.string(Hash.encode(info.narHash, "base16")))
})

const queryReferences: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  const info = yield* work(c, c.backend.read.queryPathInfo(p))
  writePathSet(c, info.references)
})

const queryReferrers: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  writePathSet(c, yield* work(c, c.backend.read.queryReferrers(p)))
})

const queryDeriver: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  const info = yield* work(c, c.backend.read.queryPathInfo(p))
  reply(c, (w) => w.string(info.deriver ? print(c, info.deriver) : ""))
})

const queryValidDerivers: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  const derivers = yield* work(c, Effect.gen(function*() {
    const m = c.backend.maintenance
    if (m?.validDerivers) return yield* storePaths(c, yield* m.validDerivers(print(c, p)))
    const info = yield* c.backend.read.queryPathInfo(p)
    if (!info.deriver || !(yield* c.backend.read.isValidPath(info.deriver))) return []
    return [info.deriver]
  }))
  writePathSet(c, derivers)
})

const drvOf = (c: Conn, p: StorePath.StorePath) =>
  Effect.mapError(readDerivation(c.backend.read, p), (e) => e._tag === "BuildFailed" ? new OpFailed({ message: e.reason }) : e)

/**
 * A derivation's outputs and their paths: the path a derivation gives, else (floating
 * content-addressed) the one its realisation records, as Nix's queryPartialDerivationOutputMap.
 */
const outputPathsOf = (c: Conn, drvPath: StorePath.StorePath, drv: Derivation.Derivation) =>
  Effect.gen(function*() {
    const out = new Map<string, StorePath.StorePath | undefined>()
    for (const [name, o] of drv.outputs) {
      const path = Derivation.outputPath(o)
      out.set(name, path === undefined ? undefined : yield* storePath(c, path))
    }
    const read = c.backend.read
    if (read.queryRealisation !== undefined && [...out.values()].some((p) => p === undefined)) {
      const hashes = yield* staticOutputHashes(drvPath).pipe(Effect.provideService(StoreRead, read))
      for (const [name, path] of out) {
        const hash = hashes.get(name)
        if (path !== undefined || hash === undefined) continue
        const r = yield* realisationOf(read, { drvHash: hash, outputName: name })
        if (Option.isSome(r)) out.set(name, r.value.outPath)
      }
    }
    return out
  })

const queryDerivationOutputs: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  const outputs = yield* work(c, Effect.flatMap(drvOf(c, p), (drv) => outputPathsOf(c, p, drv)))
  writePathSet(c, [...outputs.values()].filter((x): x is StorePath.StorePath => x !== undefined))
})

const queryDerivationOutputNames: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  const drv = yield* work(c, drvOf(c, p))
  reply(c, (w) => w.strings([...drv.outputs.keys()].sort()))
})

const queryDerivationOutputMap: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  const outputs = yield* work(c, Effect.flatMap(drvOf(c, p), (drv) => outputPathsOf(c, p, drv)))
  reply(c, (w) => {
    const sorted = [...outputs].sort((a, b) => (a[0] < b[0] ? -1 : 1))
    w.u64(sorted.length)
    for (const [name, path] of sorted) w.string(name).string(path ? print(c, path) : "")
  })
})

const queryPathFromHashPart: Handler = (c) => Effect.gen(function*() {
  const hashPart = yield* read(c, Wire.string("a hash part", 1024))
  const path = yield* work(c, c.backend.read.queryPathFromHashPart(hashPart))
  reply(c, (w) => w.string(Option.isSome(path) ? print(c, path.value) : ""))
})

const queryAllValidPaths: Handler = (c) => Effect.gen(function*() {
  const paths = yield* work(c, Effect.gen(function*() {
    const m = yield* maintenance(c, "listing all valid paths")
    if (!m.allValidPaths) return yield* fail(`store '${c.backend.read.uri}' does not support listing all valid paths`)
    return yield* storePaths(c, yield* m.allValidPaths())
  }))
  writePathSet(c, paths)
})

// ---------------------------------------------------------------------------------------------
// NARs out

const narFromPath: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  // Nix only fails here for a bad path; checking validity first lets a missing path be an error, not a hang-up.
  yield* work(c, c.backend.read.queryPathInfo(p))
  yield* Stream.runForEach(c.backend.read.narFromPath(p), (chunk) => c.sink.write(chunk)).pipe(
    // Part of the NAR may be out already: the client cannot resynchronise, so the connection ends.
    Effect.mapError((e) => e._tag === "WireClosed" ? e : { _tag: "WireClosed" as const, message: `reading the NAR failed: ${messageOf(e)}` }))
})

// ---------------------------------------------------------------------------------------------
// adding paths

/** A trusted client's value of a setting (Nix's daemon applies a trusted client's settings to itself). */
const trustedOverride = (c: Conn, name: string): string | undefined =>
  c.options.trusted ? c.settings?.overrides.findLast(([k]) => k === name)?.[1] : undefined

/** The keys paths from this client must be signed with: the daemon's, or a trusted client's `trusted-public-keys` (plus `extra-`). */
const trustedKeysFor = (c: Conn): ReadonlyArray<Signature.PublicKey> => {
  const parse = (text: string | undefined) => (text ?? "").split(/\s+/).flatMap((k) => {
    const key = k === "" ? undefined : Signature.parsePublicKey(k)
    return key && Result.isSuccess(key) ? [key.success] : []
  })
  const own = trustedOverride(c, "trusted-public-keys")
  return [...(own === undefined ? c.options.trustedKeys : parse(own)), ...parse(trustedOverride(c, "extra-trusted-public-keys"))]
}

/** The trust rules for a path from a client (Nix's LocalStore::addToStore with checkSigs). */
const admit = (c: Conn, info: PathInfo, dontCheckSigs: boolean): Effect.Effect<PathInfo, OpFailed> => {
  const checkSigs = !(dontCheckSigs && c.options.trusted)
  const admitted: PathInfo = c.options.trusted ? info : { ...info, ultimate: false }
  const requireSigs = boolSetting(trustedOverride(c, "require-sigs")) ?? c.options.requireSigs
  if (!checkSigs || !requireSigs) return Effect.succeed(admitted)
  return checkSignature(info, c.storeDir, trustedKeysFor(c)).pipe(
    Effect.as(admitted),
    Effect.mapError(() => new OpFailed({ message: `cannot add path '${print(c, info.path)}' because it lacks a signature by a trusted key` })))
}

/** A NAR from a client, with its content address checked while it streams when it claims one. */
const checkedNar = <E>(c: Conn, info: PathInfo, nar: Stream.Stream<Uint8Array, E>) =>
  withContentAddressCheck(info, c.storeDir, nar)

const addToStoreNar: Handler = (c) => Effect.gen(function*() {
  const s = yield* read(c, Worker.storePathString())
  const raw = yield* read(c, Worker.rawPathInfo(16))
  yield* read(c, Wire.bool("the repair flag"))
  const dontCheckSigs = yield* read(c, Wire.bool("the dontCheckSigs flag"))
  // 1.23+: framed; 1.21–1.22 (Nix 2.3): asked for piece by piece with STDERR_READ; older: bare, after the arguments
  if (c.minor >= 23) c.framed = c.reader.framed()
  const nar: Stream.Stream<Uint8Array, unknown> = c.framed ? Stream.suspend(() => framedAll(c)) : c.minor >= 21 ? tunnelledNar(c) : c.reader.nar()
  yield* work(c, Effect.gen(function*() {
    const path = yield* storePath(c, s)
    const info = yield* admit(c, yield* valid(Worker.validatePathInfo(path, raw, c.storeDir)), dontCheckSigs)
    const write = yield* needWrite(c)
    c.addTempRoot(print(c, path))
    yield* write.addToStore(info, checkedNar(c, info, nar))
    if (c.framed) yield* c.framed.drain()
    yield* autoOptimise(c, [print(c, path)])
  }))
})

/** A NAR the client sends only as the daemon asks for it (STDERR_READ, protocol 1.21–1.22), up to its end. */
const tunnelledNar = (c: Conn): Stream.Stream<Uint8Array, unknown> => {
  const boundary = new NarBoundary()
  const piece = 64 * 1024
  return Stream.unfold(false, (ended) => ended ? Effect.succeed(undefined) : Effect.gen(function*() {
    reply(c, (w) => w.u64(Worker.Stderr.Read).u64(piece))
    yield* c.sink.flush()
    const data = (yield* read(c, Wire.bytes("tunnelled NAR data", piece))).slice()
    if (data.length === 0) return yield* Effect.fail(new WireTruncated({ what: "a tunnelled NAR" }))
    const r = boundary.push(data)
    if (typeof r !== "number") return yield* Effect.fail(r)
    return [r < 0 ? data : data.subarray(0, r), r >= 0] as const
  }))
}

const framedAll = (c: Conn): Stream.Stream<Uint8Array, unknown> => {
  const framed = c.framed!
  return Stream.unfold(undefined, () => Effect.tryPromise({
    try: async () => {
      const piece = await framed.takeUpTo(1 << 20)
      return piece === null ? undefined : [piece, undefined] as const
    },
    catch: (e) => e
  }))
}

/** NARs up to this size are read whole and added in batches while the next ones arrive; bigger ones stream. */
const bufferedNar = 1 << 20
/** A batch of NARs read whole ends at this many paths, or once its NARs reach `batchBytes`. */
const batchPaths = 256
const batchBytes = 8 << 20
/** Batches read ahead while earlier ones are written: memory stays within (1 + this) × `batchBytes`. */
const batchesInFlight = 2

/** A path from AddMultipleToStore: its path string and info, and its NAR when it is small enough to read whole. */
interface SentPath { readonly s: string; readonly raw: Worker.RawPathInfo; readonly bytes: Uint8Array | undefined }

/** The next path sent, at once when all its bytes are buffered (the common case), else a promise of it. */
const sentPath = (framed: FramedReader): SentPath | Promise<SentPath> =>
  andThenNow(framed.runNow(Worker.storePathString()), (s) =>
    andThenNow(framed.runNow(Worker.rawPathInfo(16)), (raw) =>
      raw.narSize > bufferedNar ? { s, raw, bytes: undefined } : andThenNow(framed.wholeNow(raw.narSize, "a NAR"), (bytes) => ({ s, raw, bytes }))))

const readItem = (framed: FramedReader): Effect.Effect<SentPath, WireIoError> => Effect.suspend(() => {
  try {
    const item = sentPath(framed)
    return item instanceof Promise ? Effect.tryPromise({ try: () => item, catch: toIoError }) : Effect.succeed(item)
  } catch (e) {
    return Effect.fail(toIoError(e))
  }
})

/**
 * Paths arrive dependencies first. Small NARs are read whole and added in batches (`inMemory`: one
 * pass per NAR, one flush and one transaction a batch), each batch registered after the one before
 * while the next is read; a big NAR waits for the batches before it, then streams into the store.
 */
const addMultipleToStore: Handler = (c) => Effect.gen(function*() {
  yield* read(c, Wire.bool("the repair flag"))
  const dontCheckSigs = yield* read(c, Wire.bool("the dontCheckSigs flag"))
  const framed = c.reader.framed()
  c.framed = framed
  yield* work(c, Effect.scoped(Effect.gen(function*() {
    const write = yield* needWrite(c)
    const count = yield* framed.run(Wire.u64("the number of paths"))
    const added: Array<string> = []
    const inFlight: Array<Fiber.Fiber<void, unknown>> = []
    let previous: Effect.Effect<void, unknown> = Effect.void
    let batch: Array<{ readonly info: PathInfo; readonly nar: Stream.Stream<Uint8Array, unknown> }> = []
    let batchSize = 0
    const flush = Effect.gen(function*() {
      if (batch.length === 0) return
      const items = batch
      batch = []
      batchSize = 0
      if (inFlight.length >= batchesInFlight) yield* Fiber.join(inFlight.shift()!)
      const fiber = yield* Effect.forkScoped(Effect.andThen(previous, write.addMultiple(items, { inMemory: true })))
      inFlight.push(fiber)
      previous = Fiber.join(fiber)
    })
    for (let i = 0; i < count; i++) {
      const { s, raw, bytes } = yield* readItem(framed)
      // (checked without an effect per path; `admit` runs only where a signature is to be checked)
      const parsed = Worker.parsePath(s, c.storeDir)
      const sent = Result.isFailure(parsed) ? Result.fail(parsed.failure) : Worker.validatePathInfo(parsed.success, { ...raw, ultimate: false }, c.storeDir)
      if (Result.isFailure(sent)) return yield* malformedOp(sent.failure)
      const path = sent.success.path
      const info = c.options.trusted && dontCheckSigs ? sent.success : yield* admit(c, sent.success, dontCheckSigs)
      const printed = print(c, path)
      c.addTempRoot(printed)
      added.push(printed)
      if (bytes !== undefined) {
        batch.push({ info, nar: checkedNar(c, info, narInMemory(bytes)) })
        batchSize += bytes.length
        if (batch.length >= batchPaths || batchSize >= batchBytes) yield* flush
      } else {
        // streamed after every batch before it is in; if it fails, the rest of its NAR is still on the wire: stop here (the frames are drained)
        yield* flush
        yield* previous
        yield* write.addToStore(info, checkedNar(c, info, framed.exact(info.narSize, "a NAR")))
      }
    }
    yield* flush
    yield* framed.drain()
    yield* previous
    yield* autoOptimise(c, added)
  })))
})

/** The old (< 1.25) AddToStore: name, fixed, recursive, algorithm, then a bare NAR. */
const addToStoreOld = (c: Conn) => Effect.gen(function*() {
  const name = yield* read(c, Wire.string("a name", 1024))
  const fixed = yield* read(c, Wire.bool("the fixed flag"))
  const recursive = yield* read(c, Wire.u64("the ingestion method"))
  const algo = yield* read(c, Wire.string("a hash algorithm", 64))
  const method = !fixed || recursive === 1 ? "recursive" as const : "flat" as const
  const algorithm = !fixed ? "sha256" : algo
  const nar = yield* Effect.map(Stream.runCollect(c.reader.nar()), (chunks) => Buffer.concat([...chunks]))
  const info = yield* work(c, Effect.gen(function*() {
    if (!Hash.isHashAlgorithm(algorithm)) return yield* fail(`unknown hash algorithm '${algorithm}'`)
    if (recursive > 1) return yield* fail(`unsupported FileIngestionMethod with value of ${recursive}`)
    let dump: Uint8Array = nar
    if (method === "flat") {
      const tree = Tree.fromNar(nar)
      if (Result.isFailure(tree) || tree.success._tag !== "Regular") return yield* fail("regular file expected")
      dump = tree.success.contents
    }
    return yield* addFromDump(c, name, method, algorithm, [], Stream.make(dump))
  }))
  reply(c, (w) => w.string(print(c, info.path)))
})

const addToStore: Handler = (c) => Effect.gen(function*() {
  if (c.minor < 25) return yield* addToStoreOld(c)
  const name = yield* read(c, Wire.string("a name", 1024))
  const camStr = yield* read(c, Wire.string("a content-address method", 64))
  const refs = yield* read(c, Worker.storePathStrings("references"))
  yield* read(c, Wire.bool("the repair flag"))
  c.framed = c.reader.framed()
  const info = yield* work(c, Effect.gen(function*() {
    const references = yield* storePaths(c, refs)
    const dump = framedAll(c)
    let result: PathInfo
    if (camStr === "text:sha256" || camStr === "text") {
      const write = yield* needWrite(c)
      const chunks = yield* Stream.runCollect(dump)
      const bytes = Buffer.concat([...chunks] as Array<Uint8Array>)
      if (name.endsWith(Derivation.drvExtension)) yield* checkDerivationText(c, name, bytes)
      result = yield* write.addText(name, bytes, references)
    } else {
      const rest = camStr.startsWith("fixed:") ? camStr.slice(6) : camStr
      const method = rest.startsWith("r:") ? "recursive" as const : "flat" as const
      const algorithm = method === "recursive" ? rest.slice(2) : rest
      if (!Hash.isHashAlgorithm(algorithm)) return yield* fail(`unknown content-address method '${camStr}'`)
      result = yield* addFromDump(c, name, method, algorithm, references, dump)
    }
    yield* c.framed!.drain()
    yield* autoOptimise(c, [print(c, result.path)])
    return yield* c.backend.read.queryPathInfo(result.path)
  }))
  reply(c, (w) => Worker.writePathInfo(w, info, c.storeDir, c.minor, true))
})

/**
 * A `.drv` being added must be a derivation whose recorded outputs are the ones it computes to, as
 * Nix checks when it registers one: otherwise a crafted .drv could claim another's output paths.
 */
const checkDerivationText = (c: Conn, name: string, contents: Uint8Array | undefined) => Effect.gen(function*() {
  if (contents === undefined) return yield* fail(`'${name}' is not a derivation (not a single regular file)`)
  const drv = Derivation.parse(contents, { name: name.slice(0, -Derivation.drvExtension.length), storeDir: c.storeDir })
  if (Result.isFailure(drv)) return yield* fail(drv.failure.message)
  const inputs = yield* storePaths(c, [...drv.success.inputDrvs.keys()])
  const graph = inputs.length === 0 ? new Map() : yield* Effect.mapError(loadDerivationGraph(inputs).pipe(Effect.provideService(StoreRead, c.backend.read)),
    (e) => e._tag === "BuildFailed" ? new OpFailed({ message: e.reason }) : e)
  const checked = Derivation.checkOutputs(drv.success, { lookup: (p) => graph.get(p.slice(c.storeDir.length + 1))?.drv, storeDir: c.storeDir })
  if (Result.isFailure(checked)) return yield* fail(`derivation '${name}' has incorrect outputs: ${checked.failure.message}`)
})

/** Dumps up to this size are kept in memory; bigger ones are spooled to a temporary file. */
const spoolThreshold = 8 * 1024 * 1024

/**
 * Adds a content-addressed path from a dump (a NAR for recursive ingestion, the file's bytes for
 * flat), as Nix's addToStoreFromDump: the path comes from the hash of the whole dump and the
 * references as given, so the dump is hashed (and kept aside) before the store sees it.
 */
const addFromDump = (
  c: Conn, name: string, method: "flat" | "recursive", algorithm: Hash.HashAlgorithm,
  references: ReadonlyArray<StorePath.StorePath>, dump: Stream.Stream<Uint8Array, unknown>
) => Effect.gen(function*() {
  const write = yield* needWrite(c)
  const validName = yield* valid(Result.mapError(StorePath.validateName(name), (e) => ({ _tag: "WireMalformed", reason: e.message }) as unknown as WireMalformed))
  const caHasher = Hash.hasher(algorithm)
  const narHasher = Hash.hasher("sha256")
  const parts: Array<Uint8Array> = []
  let size = 0
  let spool: { dir: string; file: string; stream: ReturnType<typeof createWriteStream> } | undefined
  yield* Effect.addFinalizer(() => Effect.sync(() => { if (spool) rmSync(spool.dir, { recursive: true, force: true }) }))
  yield* Stream.runForEach(dump, (chunk) => Effect.promise(async () => {
    caHasher.update(chunk)
    if (method === "recursive") narHasher.update(chunk)
    size += chunk.length
    if (!spool && size <= spoolThreshold) { parts.push(chunk.slice()); return }
    if (!spool) {
      const dir = mkdtempSync(join(tmpdir(), "b3-daemon-"))
      const file = join(dir, "dump")
      spool = { dir, file, stream: createWriteStream(file) }
      for (const p of parts) spool.stream.write(p)
      parts.length = 0
    }
    if (!spool.stream.write(chunk)) await new Promise<void>((r) => { spool!.stream.once("drain", () => r()) })
  }))
  if (spool) {
    const s = spool
    yield* Effect.promise(() => new Promise<void>((r) => { s.stream.end(() => r()) }))
  }
  const body = (): Stream.Stream<Uint8Array, StoreIoError> =>
    spool ? readFileStream(spool.file, (e) => new StoreIoError({ store: c.backend.read.uri, operation: "read a spooled dump", reason: messageOf(e) }))
      : Stream.fromIterable(parts)
  const caHash = caHasher.digest()
  let nar: () => Stream.Stream<Uint8Array, StoreIoError>
  let narHash: Hash.Hash
  let narSize: number
  if (method === "recursive") {
    nar = body
    narHash = algorithm === "sha256" ? caHash : narHasher.digest()
    narSize = size
  } else {
    // a flat file's NAR: the header, the bytes, the trailer
    const [head, tail] = flatNarFrame(size)
    nar = () => Stream.concat(Stream.make(head), Stream.concat(body(), Stream.make(tail)))
    const h = Hash.hasher("sha256")
    h.update(head)
    yield* Stream.runForEach(body(), (chunk) => Effect.sync(() => h.update(chunk)))
    h.update(tail)
    narHash = h.digest()
    narSize = head.length + size + tail.length
  }
  if (validName.endsWith(Derivation.drvExtension) && !spool) {
    const bytes = Buffer.concat(parts)
    const tree = method === "recursive" ? Tree.fromNar(bytes) : Result.succeed(Tree.regular(bytes))
    yield* checkDerivationText(c, validName, Result.isSuccess(tree) && tree.success._tag === "Regular" ? tree.success.contents : undefined)
  }
  const ca = ContentAddress.fixed(method, caHash)
  const path = ContentAddress.storePath(ca, validName, { references, storeDir: c.storeDir })
  const info: PathInfo = { path, narHash, narSize, references: [...references].sort(StorePath.compare), signatures: [], ca }
  c.addTempRoot(print(c, path))
  yield* write.addToStore(info, nar())
  return info
}).pipe(Effect.scoped)

/** The bytes a NAR of one non-executable regular file of `size` bytes has before and after its contents. */
const flatNarFrame = (size: number): [Uint8Array, Uint8Array] => {
  const head = new WireWriter()
  head.string("nix-archive-1").string("(").string("type").string("regular").string("contents").u64(size)
  const tail = new WireWriter()
  const pad = (8 - (size % 8)) % 8
  tail.raw(new Uint8Array(pad)).string(")")
  return [head.take(), tail.take()]
}

const addTextToStore: Handler = (c) => Effect.gen(function*() {
  const name = yield* read(c, Wire.string("a name", 1024))
  const text = yield* read(c, Wire.bytes("the text", Wire.limits.longString))
  const refs = yield* read(c, Worker.storePathStrings("references"))
  const contents = text.slice()
  const info = yield* work(c, Effect.gen(function*() {
    const write = yield* needWrite(c)
    if (name.endsWith(Derivation.drvExtension)) yield* checkDerivationText(c, name, contents)
    const added = yield* write.addText(name, contents, yield* storePaths(c, refs))
    yield* autoOptimise(c, [print(c, added.path)])
    return added
  }))
  reply(c, (w) => w.string(print(c, info.path)))
})

const addSignatures: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  const sigs = yield* read(c, Wire.strings("signatures", Wire.limits.smallList, 1024))
  yield* work(c, Effect.gen(function*() {
    yield* needTrusted(c, "add signatures")
    yield* (yield* needWrite(c)).addSignatures(p, sigs)
  }))
  reply(c, (w) => w.u64(1))
})

const addBuildLog: Handler = (c) => Effect.gen(function*() {
  yield* read(c, Wire.string("a derivation", 1024))
  c.framed = c.reader.framed()
  yield* work(c, Effect.gen(function*() {
    yield* needTrusted(c, "add logs")
    return yield* fail(`store '${c.backend.read.uri}' does not accept build logs`)
  }))
  reply(c, (w) => w.u64(1))
})

// ---------------------------------------------------------------------------------------------
// roots and garbage collection

const ensurePath: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  yield* work(c, Effect.flatMap(c.backend.read.isValidPath(p), (ok) =>
    ok ? Effect.void : fail(`path '${print(c, p)}' is not valid (and b3's daemon has no substituters)`)))
  reply(c, (w) => w.u64(1))
})

const addTempRoot: Handler = (c) => Effect.gen(function*() {
  const p = yield* onePath(c)
  yield* work(c, Effect.sync(() => c.addTempRoot(print(c, p))))
  reply(c, (w) => w.u64(1))
})

const addIndirectRoot: Handler = (c) => Effect.gen(function*() {
  const link = yield* read(c, Wire.string("a path", 4096))
  yield* work(c, Effect.gen(function*() {
    const m = yield* maintenance(c, "garbage collector roots")
    if (!m.addIndirectRoot) return yield* fail(`store '${c.backend.read.uri}' does not support indirect roots`)
    yield* m.addIndirectRoot(link)
  }))
  reply(c, (w) => w.u64(1))
})

const syncWithGC: Handler = (c) => Effect.gen(function*() {
  yield* work(c, Effect.void)
  reply(c, (w) => w.u64(1))
})

const findRoots: Handler = (c) => Effect.gen(function*() {
  const roots = yield* work(c, Effect.gen(function*() {
    const m = yield* maintenance(c, "garbage collector roots")
    // as Nix's daemon: a client that is not trusted does not learn which processes or files hold a path
    const censor = !c.options.trusted
    const found = m.findRoots ? yield* m.findRoots({ censor }) : []
    const temp = c.tempRoots.all().map((target) => ({ link: censor ? "{censored}" : "{temp:daemon}", target }))
    return [...found, ...temp]
  }))
  reply(c, (w) => {
    w.u64(roots.length)
    for (const r of roots) w.string(r.link).string(r.target)
  })
})

const collectGarbage: Handler = (c) => Effect.gen(function*() {
  const action = yield* read(c, Wire.uint("a GC action"))
  const paths = yield* read(c, Worker.storePathStrings("paths to delete"))
  const ignoreLiveness = yield* read(c, Wire.bool("ignoreLiveness"))
  yield* read(c, Wire.u64Clamped("maxFreed"))
  for (let i = 0; i < 3; i++) yield* read(c, Wire.u64Clamped("an obsolete field"))
  const result = yield* work(c, Effect.gen(function*() {
    if (ignoreLiveness) return yield* fail("you are not allowed to ignore liveness")
    yield* storePaths(c, paths)
    const m = yield* maintenance(c, "garbage collection")
    const extraRoots = c.tempRoots.all()
    const base = { extraRoots, ownTempRoots: false }
    if (action === Worker.GcAction.ReturnLive || action === Worker.GcAction.ReturnDead) {
      const r = yield* m.collectGarbage({ ...base, dryRun: true })
      return { paths: action === Worker.GcAction.ReturnLive ? r.live ?? [] : r.deleted, bytesFreed: action === Worker.GcAction.ReturnDead ? r.bytesFreed : 0 }
    }
    if (action === Worker.GcAction.DeleteSpecific) {
      const r = yield* m.collectGarbage({ ...base, paths })
      return { paths: r.deleted, bytesFreed: r.bytesFreed }
    }
    if (action !== Worker.GcAction.DeleteDead) return yield* fail(`unknown GC action ${action}`)
    const r = yield* m.collectGarbage(base)
    return { paths: r.deleted, bytesFreed: r.bytesFreed }
  }))
  reply(c, (w) => w.strings([...result.paths].sort()).u64(result.bytesFreed).u64(0))
})

const verifyStore: Handler = (c) => Effect.gen(function*() {
  yield* read(c, Wire.bool("checkContents"))
  const repair = yield* read(c, Wire.bool("repair"))
  const errors = yield* work(c, Effect.gen(function*() {
    if (repair && !c.options.trusted) return yield* fail("you are not privileged to repair paths")
    if (repair) return yield* fail("b3 cannot repair paths")
    const m = yield* maintenance(c, "verifying")
    c.tunnel.log("checking path existence and contents...", Worker.Verbosity.Error)
    const report = yield* m.verify()
    for (const p of report.problems) {
      c.tunnel.log(p.problem === "hash-mismatch"
        ? `path '${p.path}' was modified! ${p.detail}`
        : p.problem === "missing" ? `path '${p.path}' disappeared, but it still has valid referrers!` : `path '${p.path}': ${p.detail}`, Worker.Verbosity.Error)
    }
    return report.problems.length > 0
  }))
  reply(c, (w) => w.bool(errors))
})

const optimiseStore: Handler = (c) => Effect.gen(function*() {
  yield* work(c, Effect.gen(function*() {
    const m = yield* maintenance(c, "optimising (hard-linking identical files)")
    if (!m.optimise) return yield* fail(`store '${c.backend.read.uri}' does not support optimising (hard-linking identical files)`)
    const r = yield* m.optimise({ warn: (message) => c.tunnel.log(`warning: ${message}`, Worker.Verbosity.Warn) })
    c.tunnel.log(`${(r.bytesFreed / (1024 * 1024)).toFixed(2)} MiB freed by hard-linking ${r.filesLinked} files`, Worker.Verbosity.Info)
  }))
  reply(c, (w) => w.u64(1))
})

// ---------------------------------------------------------------------------------------------
// options and building

const setOptions: Handler = (c) => Effect.gen(function*() {
  const settings = yield* read(c, Worker.clientSettings(c.minor))
  yield* work(c, Effect.sync(() => {
    c.settings = settings
    c.tunnel.verbosity = settings.verbosity
    if (!c.options.trusted && settings.overrides.some(([k]) => k === "post-build-hook")) {
      c.tunnel.log("ignoring the client-specified setting 'post-build-hook', because it is a restricted setting and you are not a trusted user", Worker.Verbosity.Debug)
    }
  }))
})

const derivedPaths = (c: Conn) => Effect.gen(function*() {
  const strings = yield* read(c, Wire.strings("derived paths", Wire.limits.listLength, 2 * Worker.maxPathLength))
  return strings
})

const parseDerived = (c: Conn, strings: ReadonlyArray<string>) =>
  Effect.forEach(strings, (s) => valid(Worker.parseDerivedPath(s, c.storeDir)))

/** Build options from the client's settings, with b3's progress turned into activities and log lines. */
const buildOptions = (c: Conn): BuildOptions & { readonly finish: () => void; readonly built: Array<string> } => {
  const built: Array<string> = []
  const activities = new Map<string, { id: number; partial: string }>()
  const flushLine = (a: { id: number; partial: string }) => {
    if (a.partial !== "") c.tunnel.result(a.id, Worker.ResultType.BuildLogLine, [a.partial])
    a.partial = ""
  }
  const end = (drvPath: string) => {
    const a = activities.get(drvPath)
    if (!a) return
    flushLine(a)
    c.tunnel.stopActivity(a.id)
    activities.delete(drvPath)
  }
  const decoder = new TextDecoder()
  const s = c.settings
  const fromClient = c.options.trusted ? (s?.overrides ?? []).filter(([k]) => k === "extra-sandbox-paths" || k === "sandbox-paths").flatMap(([, v]) => v.split(/\s+/).filter((x) => x.length > 0)) : []
  const sandboxPaths = [...(c.options.sandboxPaths ?? []), ...fromClient]
  const hooks = new Map<string, number>()
  const hook = postBuildHook(c)
  return {
    ...(sandboxPaths.length > 0 ? { sandboxPaths } : {}),
    ...(hook !== undefined ? { postBuildHook: hook } : {}),
    maxJobs: s && s.maxBuildJobs > 0 ? s.maxBuildJobs : 1,
    keepGoing: s?.keepGoing ?? false,
    ...(s && s.buildCores > 0 ? { cores: s.buildCores } : {}),
    ...(s && s.maxSilentTime > 0 ? { maxSilentSeconds: s.maxSilentTime } : {}),
    onEvent: (e: BuildEvent) => {
      if (e.type === "building") {
        const id = c.tunnel.startActivity(Worker.ActivityType.Build, `building '${e.drvPath}'`, [e.drvPath, "", 1, 1])
        activities.set(e.drvPath, { id, partial: "" })
      } else if (e.type === "built") { built.push(...Object.values(e.outputs)); end(e.drvPath) }
      else if (e.type === "failed") end(e.drvPath)
      // Nix's runPostBuildHook: an activity of its own, its output as post-build log lines
      else if (e.type === "post-build-hook") {
        hooks.set(e.drvPath, c.tunnel.startActivity(Worker.ActivityType.PostBuildHook, `running post-build-hook '${e.program}'`, [e.drvPath]))
      } else if (e.type === "post-build-hook-done") {
        const id = hooks.get(e.drvPath)
        if (id !== undefined) { c.tunnel.stopActivity(id); hooks.delete(e.drvPath) }
      }
    },
    onHookLog: (drvPath: string, line: string) => {
      const id = hooks.get(drvPath)
      if (id !== undefined) c.tunnel.result(id, Worker.ResultType.PostBuildLogLine, [line])
    },
    onLog: (drvPath: string, chunk: Uint8Array) => {
      const a = activities.get(drvPath)
      if (!a) return
      const text = a.partial + decoder.decode(chunk, { stream: true })
      const lines = text.split("\n")
      a.partial = lines.pop()!
      for (const line of lines) c.tunnel.result(a.id, Worker.ResultType.BuildLogLine, [line.replace(/\r$/, "")])
    },
    finish: () => { for (const drvPath of [...activities.keys()]) end(drvPath) },
    built
  }
}

/**
 * The post-build-hook for this client's builds: a trusted client's `post-build-hook` (an empty one
 * turns the daemon's off), else the daemon's own. Nix hands the hook its settings as NIX_CONFIG;
 * here that is the settings the client sent, for a trusted client.
 */
const postBuildHook = (c: Conn): { readonly program: string; readonly nixConfig?: string } | undefined => {
  const program = trustedOverride(c, "post-build-hook") ?? c.options.postBuildHook ?? ""
  if (program === "") return undefined
  const overrides = c.options.trusted ? c.settings?.overrides ?? [] : []
  return overrides.length > 0 ? { program, nixConfig: overrides.map(([k, v]) => `${k} = ${v}\n`).join("") } : { program }
}

/** The keys built outputs are signed with: the daemon's, and those of a trusted client's `secret-key-files`. */
const signingKeys = (c: Conn) => Effect.gen(function*() {
  const files = [...(c.options.secretKeyFiles ?? [])]
  if (c.options.trusted) {
    for (const [k, v] of c.settings?.overrides ?? []) if (k === "secret-key-files") files.push(...v.split(/\s+/).filter((f) => f.length > 0))
  }
  const keys: Array<Signature.SecretKey> = []
  for (const file of files) {
    const text = yield* Effect.try({ try: () => readFileSync(file, "utf8").trim(), catch: () => new OpFailed({ message: `cannot read the secret key file '${file}'` }) })
    const key = Signature.parseSecretKey(text)
    if (Result.isFailure(key)) return yield* fail(key.failure.message)
    keys.push(key.success)
  }
  return keys
})

/** Signs what was built (Nix signs the outputs it registers with its secret-key-files). */
const signBuilt = (c: Conn, outputs: ReadonlyArray<string>) => Effect.gen(function*() {
  const keys = yield* signingKeys(c)
  if (keys.length === 0 || outputs.length === 0) return
  const write = yield* needWrite(c)
  for (const printed of new Set(outputs)) {
    const path = yield* storePath(c, printed)
    const info = yield* c.backend.read.queryPathInfo(path)
    const data = fingerprint(info, c.storeDir)
    yield* write.addSignatures(path, keys.map((k) => Signature.signDetached(k, data)))
  }
})

/**
 * Refuses derivations whose recorded output paths are not the ones they compute to (Nix checks
 * this when it registers a .drv): a crafted .drv added as a plain file must not build into
 * another derivation's output path.
 */
const checkDerivations = (c: Conn, drvs: ReadonlyArray<StorePath.StorePath>) => Effect.gen(function*() {
  const graph = yield* Effect.mapError(loadDerivationGraph(drvs).pipe(Effect.provideService(StoreRead, c.backend.read)),
    (e) => e._tag === "BuildFailed" ? new OpFailed({ message: e.reason }) : e)
  const lookup = (p: string) => graph.get(p.slice(c.storeDir.length + 1))?.drv
  for (const node of graph.values()) {
    const checked = Derivation.checkOutputs(node.drv, { lookup, storeDir: c.storeDir })
    if (Result.isFailure(checked)) {
      return yield* fail(`derivation '${print(c, node.path)}' has incorrect outputs: ${checked.failure.message}`)
    }
  }
})

/** Builds what the targets need: derivations are realised, plain paths must be valid. */
const realiseTargets = (c: Conn, targets: ReadonlyArray<Worker.DerivedPath>, mode: number) => Effect.gen(function*() {
  if (mode === Worker.BuildMode.Repair) return yield* fail(c.options.trusted ? "b3 cannot repair paths" : "repairing is not allowed because you are not in 'trusted-users'")
  if (mode === Worker.BuildMode.Check) return yield* fail("b3 cannot check (rebuild and compare) derivations")
  for (const t of targets) {
    if (t._tag === "Opaque" && !(yield* c.backend.read.isValidPath(t.path))) {
      return yield* fail(`path '${print(c, t.path)}' is not valid (and b3's daemon has no substituters)`)
    }
  }
  const drvs = [...new Map(targets.flatMap((t) => t._tag === "Built" ? [[StorePath.baseName(t.drvPath), t.drvPath] as const] : [])).values()]
  if (drvs.length === 0) return []
  yield* checkDerivations(c, drvs)
  const build = c.backend.build
  if (!build) return yield* fail(`store '${c.backend.read.uri}' cannot build`)
  const options = buildOptions(c)
  for (const d of drvs) c.addTempRoot(print(c, d))
  const results = yield* build.buildDerivations(drvs, options).pipe(Effect.ensuring(Effect.sync(options.finish)))
  yield* signBuilt(c, options.built)
  yield* autoOptimise(c, options.built)
  // outputs stay roots while the client is connected, as in Nix (it roots them itself next)
  for (const r of results) for (const p of Object.values(r.outputs)) c.addTempRoot(print(c, p))
  return results
})

const buildPaths: Handler = (c) => Effect.gen(function*() {
  const strings = yield* derivedPaths(c)
  const mode = c.minor >= 15 ? yield* read(c, Wire.uint("a build mode")) : Worker.BuildMode.Normal
  yield* work(c, Effect.flatMap(parseDerived(c, strings), (targets) => realiseTargets(c, targets, mode)))
  reply(c, (w) => w.u64(1))
})

/** The DrvOutput ids and realisations of a derivation's outputs (input-addressed: known paths). */
const realisations = (c: Conn, drvPath: StorePath.StorePath, wanted: ReadonlyArray<string>) => Effect.gen(function*() {
  const graph = yield* Effect.mapError(loadDerivationGraph([drvPath]).pipe(Effect.provideService(StoreRead, c.backend.read)),
    (e) => e._tag === "BuildFailed" ? new OpFailed({ message: e.reason }) : e)
  const drv = graph.get(StorePath.baseName(drvPath))!.drv
  const hashed = Derivation.hashDerivationModulo(drv, true, { lookup: (p) => graph.get(p.slice(c.storeDir.length + 1))?.drv, storeDir: c.storeDir })
  if (Result.isFailure(hashed)) return yield* fail(hashed.failure.message)
  const out: Array<readonly [string, string]> = []
  for (const [name, o] of drv.outputs) {
    if (wanted.length > 0 && !wanted.includes(name)) continue
    const hash = hashed.success.hashes.get(name)
    if (hash === undefined) continue
    const id = Worker.drvOutputId(hash, name)
    const known = Derivation.outputPath(o)
    if (known !== undefined) { out.push([id, Worker.realisationJson(id, yield* storePath(c, known))]); continue }
    // a floating content-addressed output: where it went is its realisation
    const drvOutput = Realisation.parseDrvOutput(id)
    if (Result.isFailure(drvOutput)) continue
    const found = yield* realisationOf(c.backend.read, drvOutput.success)
    if (Option.isSome(found)) out.push([id, Worker.realisationJson(id, found.value.outPath)])
  }
  return out
})

const buildPathsWithResults: Handler = (c) => Effect.gen(function*() {
  const strings = yield* derivedPaths(c)
  const mode = yield* read(c, Wire.uint("a build mode"))
  const results = yield* work(c, Effect.gen(function*() {
    const targets = yield* parseDerived(c, strings)
    const start = Math.floor(Date.now() / 1000)
    const built = yield* Effect.result(realiseTargets(c, targets, mode))
    const stop = Math.floor(Date.now() / 1000)
    if (built._tag === "Failure" && built.failure instanceof OpFailed) return yield* Effect.fail(built.failure)
    const statusByDrv = new Map(built._tag === "Success" ? built.success.map((r) => [StorePath.baseName(r.drvPath), r.status]) : [])
    return yield* Effect.forEach(targets, (t, i) => Effect.gen(function*() {
      const base = { path: strings[i]!, timesBuilt: 0, isNonDeterministic: false, startTime: start, stopTime: stop }
      if (t._tag === "Opaque") return { ...base, status: Worker.BuildStatus.AlreadyValid, errorMsg: "", builtOutputs: [] }
      const outputs = yield* realisations(c, t.drvPath, t.outputs)
      const okay = (yield* c.backend.read.queryValidPaths(outputs.map(([, json]) => Worker.realisationOutPath(json, c.storeDir)!))).length === outputs.length
      if (!okay) {
        return { ...base, status: Worker.BuildStatus.PermanentFailure, errorMsg: built._tag === "Failure" ? messageOf(built.failure) : "build failed", builtOutputs: [] }
      }
      const status = statusByDrv.get(StorePath.baseName(t.drvPath))
      return {
        ...base,
        status: status === "built" ? Worker.BuildStatus.Built : status === "substituted" ? Worker.BuildStatus.Substituted : Worker.BuildStatus.AlreadyValid,
        timesBuilt: status === "built" ? 1 : 0,
        errorMsg: "",
        builtOutputs: outputs
      }
    }))
  }))
  reply(c, (w) => {
    w.u64(results.length)
    for (const r of results) Worker.writeBuildResult(w, r)
  })
})

const buildDerivation: Handler = (c) => Effect.gen(function*() {
  const s = yield* read(c, Worker.storePathString())
  const raw = yield* read(c, Worker.rawDerivation())
  const mode = yield* read(c, Wire.uint("a build mode"))
  const result = yield* work(c, Effect.gen(function*() {
    const drvPath = yield* storePath(c, s)
    const drv = yield* valid(Worker.validateDerivation(raw, Derivation.nameFromDrvPath(StorePath.baseName(drvPath)), c.storeDir))
    const fixedOutput = [...drv.outputs.values()].every((o) => o._tag === "Fixed")
    if (!c.options.trusted && !fixedOutput) return yield* fail("you are not privileged to build input-addressed derivations")
    if (mode !== Worker.BuildMode.Normal) return yield* fail("b3 only builds in normal mode (no repair or check)")
    const build = c.backend.build
    if (!build?.buildBasic) return yield* fail(`store '${c.backend.read.uri}' cannot build derivations sent by the client`)
    const options = buildOptions(c)
    const start = Math.floor(Date.now() / 1000)
    const outcome = yield* Effect.result(build.buildBasic(drvPath, drv, options).pipe(
      Effect.ensuring(Effect.sync(options.finish)),
      Effect.tap(() => signBuilt(c, options.built)),
      Effect.tap(() => autoOptimise(c, options.built))))
    const stop = Math.floor(Date.now() / 1000)
    if (outcome._tag === "Failure") {
      const e = outcome.failure
      return { status: Worker.BuildStatus.PermanentFailure, errorMsg: messageOf(e), timesBuilt: 0, start, stop, outputs: [] as Array<readonly [string, string]> }
    }
    const outputs: Array<readonly [string, string]> = []
    const hashed = Derivation.hashDerivationModulo(drv, true, { storeDir: c.storeDir })
    for (const [name, path] of Object.entries(outcome.success.outputs)) {
      const hash = Result.isSuccess(hashed) ? hashed.success.hashes.get(name) : undefined
      if (hash === undefined) continue
      const id = Worker.drvOutputId(hash, name)
      outputs.push([id, Worker.realisationJson(id, path)])
    }
    return { status: outcome.success.status === "built" ? Worker.BuildStatus.Built : Worker.BuildStatus.AlreadyValid, errorMsg: "", timesBuilt: 1, start, stop, outputs }
  }))
  reply(c, (w) => {
    w.u64(result.status).string(result.errorMsg)
    if (c.minor >= 29) w.u64(result.timesBuilt).bool(false).u64(result.start).u64(result.stop)
    if (c.minor >= 28) Worker.writeBuildOutputs(w, result.outputs)
  })
})

const queryMissing: Handler = (c) => Effect.gen(function*() {
  const strings = yield* derivedPaths(c)
  const result = yield* work(c, Effect.gen(function*() {
    const targets = yield* parseDerived(c, strings)
    const willBuild = new Map<string, StorePath.StorePath>()
    const unknown = new Map<string, StorePath.StorePath>()
    const seen = new Set<string>()
    const visit = (t: Worker.DerivedPath): Effect.Effect<void, unknown> => Effect.gen(function*() {
      const key = t._tag === "Opaque" ? StorePath.baseName(t.path) : `${StorePath.baseName(t.drvPath)}!${t.outputs.join(",")}`
      if (seen.has(key)) return
      seen.add(key)
      if (t._tag === "Opaque") {
        if (!(yield* c.backend.read.isValidPath(t.path))) unknown.set(key, t.path)
        return
      }
      if (!(yield* c.backend.read.isValidPath(t.drvPath))) { unknown.set(StorePath.baseName(t.drvPath), t.drvPath); return }
      const drv = yield* drvOf(c, t.drvPath)
      const outputs = yield* outputPathsOf(c, t.drvPath, drv)
      const wanted = [...outputs].filter(([name]) => t.outputs.length === 0 || t.outputs.includes(name))
      const paths = wanted.map(([, p]) => p)
      const known = paths.filter((p): p is StorePath.StorePath => p !== undefined)
      const validOutputs = yield* c.backend.read.queryValidPaths(known)
      if (validOutputs.length === paths.length) return
      willBuild.set(StorePath.baseName(t.drvPath), t.drvPath)
      for (const [input, names] of drv.inputDrvs) {
        yield* visit({ _tag: "Built", drvPath: yield* storePath(c, input), outputs: [...names] })
      }
      for (const src of drv.inputSrcs) yield* visit({ _tag: "Opaque", path: yield* storePath(c, src) })
    })
    for (const t of targets) yield* visit(t)
    return { willBuild: [...willBuild.values()], unknown: [...unknown.values()] }
  }))
  reply(c, (w) => {
    Worker.writePaths(w, result.willBuild, c.storeDir)
    Worker.writePaths(w, [], c.storeDir)
    Worker.writePaths(w, result.unknown, c.storeDir)
    w.u64(0).u64(0)
  })
})

const queryRealisation: Handler = (c) => Effect.gen(function*() {
  const text = yield* read(c, Wire.string("a derivation output id", 1024))
  const found = yield* work(c, Effect.gen(function*() {
    const id = Realisation.parseDrvOutput(text)
    if (Result.isFailure(id)) return yield* fail(id.failure.message)
    return yield* realisationOf(c.backend.read, id.success)
  }))
  reply(c, (w) => {
    if (Option.isNone(found)) { w.u64(0); return }
    // 1.31+: the realisation as JSON; older clients get its output path
    w.u64(1).string(c.minor >= 31 ? Realisation.print(found.value) : print(c, found.value.outPath))
  })
})

const registerDrvOutput: Handler = (c) => Effect.gen(function*() {
  const first = yield* read(c, Wire.string(c.minor >= 31 ? "a realisation" : "a derivation output id", Wire.limits.shortString))
  const outPath = c.minor >= 31 ? undefined : yield* read(c, Worker.storePathString())
  yield* work(c, Effect.gen(function*() {
    const write = yield* needWrite(c)
    let r: Realisation.Realisation
    if (outPath === undefined) {
      const parsed = Realisation.parse(first)
      if (Result.isFailure(parsed)) return yield* fail(parsed.failure.message)
      r = parsed.success
    } else {
      const id = Realisation.parseDrvOutput(first)
      if (Result.isFailure(id)) return yield* fail(id.failure.message)
      r = Realisation.make(id.success, yield* storePath(c, outPath))
    }
    yield* registerRealisation({ read: c.backend.read, write }, r)
  }))
  reply(c, () => {})
})

const obsoleteEmpty: Handler = (c) => Effect.gen(function*() {
  yield* work(c, Effect.void)
  reply(c, (w) => w.u64(0))
})

const clearFailedPaths: Handler = (c) => Effect.gen(function*() {
  yield* read(c, Worker.storePathStrings())
  yield* work(c, Effect.void)
  reply(c, (w) => w.u64(1))
})

export const handlers: ReadonlyMap<number, Handler> = new Map<number, Handler>([
  [Worker.Op.IsValidPath, isValidPath],
  [Worker.Op.HasSubstitutes, hasSubstitutes],
  [Worker.Op.QueryPathHash, queryPathHash],
  [Worker.Op.QueryReferences, queryReferences],
  [Worker.Op.QueryReferrers, queryReferrers],
  [Worker.Op.AddToStore, addToStore],
  [Worker.Op.AddTextToStore, addTextToStore],
  [Worker.Op.BuildPaths, buildPaths],
  [Worker.Op.EnsurePath, ensurePath],
  [Worker.Op.AddTempRoot, addTempRoot],
  [Worker.Op.AddIndirectRoot, addIndirectRoot],
  [Worker.Op.SyncWithGC, syncWithGC],
  [Worker.Op.FindRoots, findRoots],
  [Worker.Op.QueryDeriver, queryDeriver],
  [Worker.Op.SetOptions, setOptions],
  [Worker.Op.CollectGarbage, collectGarbage],
  [Worker.Op.QuerySubstitutablePathInfo, querySubstitutablePathInfo],
  [Worker.Op.QueryDerivationOutputs, queryDerivationOutputs],
  [Worker.Op.QueryAllValidPaths, queryAllValidPaths],
  [Worker.Op.QueryFailedPaths, obsoleteEmpty],
  [Worker.Op.ClearFailedPaths, clearFailedPaths],
  [Worker.Op.QueryPathInfo, queryPathInfo],
  [Worker.Op.QueryDerivationOutputNames, queryDerivationOutputNames],
  [Worker.Op.QueryPathFromHashPart, queryPathFromHashPart],
  [Worker.Op.QuerySubstitutablePathInfos, querySubstitutablePathInfos],
  [Worker.Op.QueryValidPaths, queryValidPaths],
  [Worker.Op.QuerySubstitutablePaths, querySubstitutablePaths],
  [Worker.Op.QueryValidDerivers, queryValidDerivers],
  [Worker.Op.OptimiseStore, optimiseStore],
  [Worker.Op.VerifyStore, verifyStore],
  [Worker.Op.BuildDerivation, buildDerivation],
  [Worker.Op.AddSignatures, addSignatures],
  [Worker.Op.NarFromPath, narFromPath],
  [Worker.Op.AddToStoreNar, addToStoreNar],
  [Worker.Op.QueryMissing, queryMissing],
  [Worker.Op.QueryDerivationOutputMap, queryDerivationOutputMap],
  [Worker.Op.RegisterDrvOutput, registerDrvOutput],
  [Worker.Op.QueryRealisation, queryRealisation],
  [Worker.Op.AddMultipleToStore, addMultipleToStore],
  [Worker.Op.AddBuildLog, addBuildLog],
  [Worker.Op.BuildPathsWithResults, buildPathsWithResults]
])
