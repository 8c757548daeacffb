/**
 * A store served by a Nix daemon (`daemon`, `unix:///path/to/socket`): `StoreRead`, `StoreWrite`
 * and `StoreBuild` over the worker protocol, as Nix 2.8's RemoteStore. Connections are pooled
 * (a few at once, `max-connections`) and belong to the scope the store was opened in.
 *
 * Paths added go through AddToStoreNar (framed NAR) or AddToStore (content-addressed dumps, text);
 * the daemon applies its own trust rules (an untrusted client may add content-addressed paths and
 * signed ones). Builds use BuildPathsWithResults; the daemon's build activities and log lines are
 * passed to `onEvent` / `onLog`.
 */
import { Effect, Fiber, Option, Result, Semaphore, Stream, type Scope } from "effect"
import * as StorePath from "../../core/store-path.ts"
import { Wire, Worker } from "../../core/wire/index.ts"
import { encode, endFrame, frameHeader } from "../../core/wire/encoder.ts"
import { topoSortInfos } from "../../services/closure.ts"
import type { PathInfo } from "../../core/path-info.ts"
import { BuildFailed, type BuildEvent, type BuildOptions, type BuildResult, type StoreBuildApi } from "../../services/store-build.ts"
import { BadNar } from "../../nar/errors.ts"
import { HashMismatch, PathNotValid, SignatureError, StoreIoError, type StoreError } from "../../services/store-errors.ts"
import type { StoreMaintenanceApi } from "../../services/store-maintenance.ts"
import type { StoreReadApi } from "../../services/store-read.ts"
import type { StoreWriteApi } from "../../services/store-write.ts"
import { addPathTwoPass } from "../../services/write-helpers.ts"
import type { WireClosed } from "../../io/wire-io.ts"
import { DaemonConnection, DaemonOpError, openConnection, type ClientOptions, type ConnectionError, type StderrHandler } from "./connection.ts"

export interface DaemonStoreOptions {
  readonly uri: string
  readonly socketPath: string
  readonly storeDir: string
  readonly maxConnections: number
  readonly client: ClientOptions
}

export interface DaemonStore {
  readonly read: StoreReadApi
  readonly write: StoreWriteApi
  readonly build: StoreBuildApi
  readonly maintenance: StoreMaintenanceApi
  /** The daemon's Nix version, as it reported it (protocol 1.33+). */
  readonly daemonVersion: Effect.Effect<string, StoreError>
}

/** A daemon's error as the store error it stands for. */
const storeErrorOf = (uri: string, operation: string, path?: string) => (e: ConnectionError | StoreError): StoreError => {
  if (e._tag !== "DaemonOpError" && e._tag !== "WireClosed" && e._tag !== "WireMalformed" && e._tag !== "WireTruncated" && e._tag !== "WireTooLarge") return e
  const message = e.message
  if (e._tag === "DaemonOpError") {
    const notValid = /path '([^']+)' is not valid/.exec(message)
    if (notValid) return new PathNotValid({ path: notValid[1]!, store: uri })
    if (/signature/.test(message)) return new SignatureError({ path: path ?? "", reason: message })
    if (/bad archive|bad NAR|not a NAR|archive/i.test(message)) return new BadNar({ offset: 0, reason: message })
    if (/hash mismatch|size mismatch/i.test(message)) return new HashMismatch({ path: path ?? "", what: "NAR", expected: "", actual: message })
  }
  return new StoreIoError({ store: uri, operation, reason: message })
}

export const make = (options: DaemonStoreOptions): Effect.Effect<DaemonStore, StoreError, Scope.Scope> => Effect.gen(function*() {
  const { uri, storeDir } = options
  const idle: Array<DaemonConnection> = []
  const permits = yield* Semaphore.make(Math.max(1, options.maxConnections))
  yield* Effect.addFinalizer(() => Effect.sync(() => { for (const c of idle.splice(0)) c.close() }))

  const acquire = Effect.suspend(() => {
    const conn = idle.pop()
    return conn && conn.good ? Effect.succeed(conn) : openConnection(options.socketPath, options.client)
  })
  const release = (conn: DaemonConnection, ok: boolean) => Effect.sync(() => {
    if (ok && conn.good) idle.push(conn)
    else conn.close()
  })

  /** Runs `f` on a pooled connection; a failure other than a daemon-reported one drops the connection. */
  const withConnection = <A, E, R = never>(operation: string, f: (c: DaemonConnection) => Effect.Effect<A, E | ConnectionError, R>, path?: string): Effect.Effect<A, StoreError | Exclude<E, ConnectionError>, R> =>
    permits.withPermits(1)(Effect.acquireUseRelease(acquire, f, (conn, exit) => {
      const ok = exit._tag === "Success" || (exit.cause.reasons.every((r) => r._tag === "Fail" && (r.error as { _tag?: string })._tag === "DaemonOpError"))
      return release(conn, ok)
    })).pipe(Effect.mapError((e) => storeErrorOf(uri, operation, path)(e as ConnectionError) as StoreError | Exclude<E, ConnectionError>))

  const print = (p: StorePath.StorePath) => StorePath.print(p, storeDir)
  const parsePaths = (list: ReadonlyArray<string>) =>
    Effect.mapError(Effect.fromResult(Worker.parsePaths(list, storeDir)), (e) => new StoreIoError({ store: uri, operation: "read the daemon's reply", reason: e.reason }))

  /** Whether a path is valid, asked on a connection of its own (not from the pool). */
  const validOnFreshConnection = (path: StorePath.StorePath) => Effect.acquireUseRelease(
    openConnection(options.socketPath, options.client),
    (c) => Effect.gen(function*() {
      c.send((w) => w.u64(Worker.Op.IsValidPath).string(print(path)))
      yield* c.processStderr()
      return yield* c.read(Wire.bool())
    }),
    (c) => Effect.sync(() => c.close())).pipe(Effect.orElseSucceed(() => true))

  const queryPathInfo = (path: StorePath.StorePath): Effect.Effect<PathInfo, StoreError> =>
    withConnection("query path info", (c) => Effect.gen(function*() {
      c.send((w) => w.u64(Worker.Op.QueryPathInfo).string(print(path)))
      yield* c.processStderr()
      if (!(yield* c.read(Wire.bool()))) return yield* new PathNotValid({ path: print(path), store: uri })
      const raw = yield* c.read(Worker.rawPathInfo(c.minor))
      const info = Worker.validatePathInfo(path, raw, storeDir)
      if (Result.isFailure(info)) return yield* new StoreIoError({ store: uri, operation: "query path info", reason: info.failure.reason })
      return info.success as PathInfo
    }), print(path))

  const read: StoreReadApi = {
    uri,
    storeDir,
    queryPathInfo,
    isValidPath: (path) => withConnection("query path", (c) => Effect.gen(function*() {
      c.send((w) => w.u64(Worker.Op.IsValidPath).string(print(path)))
      yield* c.processStderr()
      return yield* c.read(Wire.bool())
    })),
    queryValidPaths: (paths) => withConnection("query paths", (c) => Effect.gen(function*() {
      c.send((w) => {
        w.u64(Worker.Op.QueryValidPaths).strings(paths.map(print))
        if (c.minor >= 27) w.bool(false)
      })
      yield* c.processStderr()
      const valid = new Set(yield* c.read(Worker.storePathStrings()))
      return paths.filter((p) => valid.has(print(p)))
    })),
    narFromPath: (path) => Stream.unwrap(Effect.gen(function*() {
      yield* permits.take(1)
      yield* Effect.addFinalizer(() => permits.release(1))
      const conn = yield* Effect.mapError(acquire, storeErrorOf(uri, "read a NAR", print(path)))
      let finished = false
      yield* Effect.addFinalizer(() => release(conn, finished))
      conn.send((w) => w.u64(Worker.Op.NarFromPath).string(print(path)))
      yield* Effect.mapError(conn.processStderr(), storeErrorOf(uri, "read a NAR", print(path)))
      return conn.reader.nar().pipe(
        Stream.onEnd(Effect.sync(() => { finished = true })),
        // Nix's daemon starts a NAR before it finds the path missing, then sends an error in its middle.
        Stream.catch((e) => Stream.fromEffect(Effect.flatMap(validOnFreshConnection(path), (valid) =>
          Effect.fail(valid ? storeErrorOf(uri, "read a NAR", print(path))(e) : new PathNotValid({ path: print(path), store: uri }))))))
    })),
    queryPathFromHashPart: (hashPart) => withConnection("query hash part", (c) => Effect.gen(function*() {
      c.send((w) => w.u64(Worker.Op.QueryPathFromHashPart).string(hashPart))
      yield* c.processStderr()
      const s = yield* c.read(Worker.storePathString())
      if (s === "") return Option.none()
      return Option.some((yield* parsePaths([s]))[0]!)
    })),
    queryReferrers: (path) => withConnection("query referrers", (c) => Effect.gen(function*() {
      c.send((w) => w.u64(Worker.Op.QueryReferrers).string(print(path)))
      yield* c.processStderr()
      return [...(yield* parsePaths(yield* c.read(Worker.storePathStrings())))].sort(StorePath.compare)
    }))
  }

  /**
   * Sends a framed stream while reading the daemon's stderr (as Nix's withFramedSink). A daemon that
   * answers early (an error) makes the sending stop at the next chunk and end the frames, so the
   * connection stays in step; a source that fails makes the connection unusable (it is closed, and
   * the daemon abandons the half-received path).
   */
  const sendFramed = <E, R>(c: DaemonConnection, data: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, E | ConnectionError, R> =>
    Effect.gen(function*() {
      yield* c.sink.flush()
      let answered = false
      const stderr = yield* Effect.forkChild(c.processStderr({}, false).pipe(Effect.ensuring(Effect.sync(() => { answered = true }))))
      // once the daemon has answered, the rest of the data is not sent (the stream is cut short)
      const untilAnswered = Stream.takeWhile(data, () => !answered)
      yield* Stream.runForEach(untilAnswered, (chunk): Effect.Effect<void, WireClosed> => chunk.length === 0 ? Effect.void
        : Effect.flatMap(c.sink.write(frameHeader(chunk.length)), () => c.sink.write(chunk))).pipe(
        Effect.flatMap(() => c.sink.write(endFrame)),
        Effect.flatMap(() => c.sink.flush()),
        Effect.tapError(() => Effect.sync(() => { c.good = false })),
        Effect.onInterrupt(() => Effect.sync(() => { c.good = false })))
      yield* Fiber.join(stderr)
    })

  const addToStore = <E, R>(info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, StoreError | E, R> =>
    withConnection("add a path", (c) => Effect.gen(function*() {
      c.send((w) => {
        w.u64(Worker.Op.AddToStoreNar)
        Worker.writePathInfo(w, info, storeDir, 16, true)
        w.bool(false).bool(false) // repair, dontCheckSigs
      })
      yield* sendFramed(c, nar)
    }), print(info.path)) as Effect.Effect<void, StoreError | E, R>

  /** AddToStore (1.25+): a content-addressed dump, the daemon computes the path. */
  const addCA = (name: string, method: string, references: ReadonlyArray<StorePath.StorePath>, dump: Stream.Stream<Uint8Array, StoreError>) =>
    withConnection("add a path", (c) => Effect.gen(function*() {
      c.send((w) => {
        w.u64(Worker.Op.AddToStore).string(name).string(method).strings(references.map(print).sort()).bool(false)
      })
      yield* sendFramed(c, dump)
      const path = yield* c.read(Worker.storePathString())
      const raw = yield* c.read(Worker.rawPathInfo(c.minor))
      const parsed = Result.flatMap(Worker.parsePath(path, storeDir), (p) => Worker.validatePathInfo(p, raw, storeDir))
      if (Result.isFailure(parsed)) return yield* new StoreIoError({ store: uri, operation: "add a path", reason: parsed.failure.reason })
      return parsed.success as PathInfo
    }))

  const core = { addToStore, addSignatures: (path: StorePath.StorePath, signatures: ReadonlyArray<string>) =>
    withConnection("add signatures", (c) => Effect.gen(function*() {
      c.send((w) => w.u64(Worker.Op.AddSignatures).string(print(path)).strings(signatures))
      yield* c.processStderr()
      yield* c.read(Wire.u64())
    }), print(path)) }

  const write: StoreWriteApi = {
    addToStore,
    addSignatures: core.addSignatures,
    addPath: addPathTwoPass(read, core),
    addText: (name, text, references = []) => Effect.gen(function*() {
      const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text
      return yield* addCA(name, "text:sha256", references, Stream.make(bytes))
    }),
    addMultiple: (items) => {
      const byKey = new Map(items.map((item) => [StorePath.baseName(item.info.path), item]))
      return withConnection("add paths", (c) => Effect.gen(function*() {
        const ordered = yield* Effect.fromResult(topoSortInfos(items.map((i) => i.info), storeDir))
        if (c.minor < 32) return yield* Effect.forEach(ordered, (info) => addToStore(info, byKey.get(StorePath.baseName(info.path))!.nar), { discard: true })
        c.send((w) => w.u64(Worker.Op.AddMultipleToStore).bool(false).bool(false))
        const body = Stream.concat(
          Stream.make(encodeCount(ordered.length)),
          Stream.flatMap(Stream.fromIterable(ordered), (info) => Stream.concat(
            Stream.make(encodeInfo(info)),
            byKey.get(StorePath.baseName(info.path))!.nar)))
        yield* sendFramed(c, body)
      }))
    }
  }
  const encodeCount = (n: number) => encode((w) => w.u64(n))
  const encodeInfo = (info: PathInfo) => encode((w) => Worker.writePathInfo(w, info, storeDir, 16, true))

  const build: StoreBuildApi = {
    buildDerivations: (drvPaths, buildOptions = {}) => withConnection("build", (c) => Effect.gen(function*() {
      const handler = buildHandler(buildOptions)
      c.send((w) => w.u64(Worker.Op.BuildPathsWithResults).strings(drvPaths.map((d) => `${print(d)}!*`)).u64(Worker.BuildMode.Normal))
      yield* c.processStderr(handler).pipe(Effect.ensuring(Effect.sync(handler.finish)))
      const results = yield* c.read(Wire.list("build results", Wire.limits.listLength, Worker.buildResult))
      const out: Array<BuildResult> = []
      for (const [i, r] of results.entries()) {
        const drvPath = drvPaths[i]!
        if (![Worker.BuildStatus.Built, Worker.BuildStatus.Substituted, Worker.BuildStatus.AlreadyValid, Worker.BuildStatus.ResolvesToAlreadyValid].includes(r.status as 0)) {
          return yield* new BuildFailed({ drvPath: print(drvPath), reason: r.errorMsg || `status ${r.status}`, logTail: "" })
        }
        const outputs: Record<string, StorePath.StorePath> = {}
        for (const [id, json] of r.builtOutputs) {
          const name = id.slice(id.lastIndexOf("!") + 1)
          const p = Worker.realisationOutPath(json, storeDir)
          if (p) outputs[name] = p
        }
        out.push({ drvPath, outputs, status: r.status === Worker.BuildStatus.Built ? "built" : r.status === Worker.BuildStatus.Substituted ? "substituted" : "already-valid" })
      }
      return out
    }), undefined)
  }

  const maintenance: StoreMaintenanceApi = {
    verify: () => withConnection("verify", (c) => Effect.gen(function*() {
      const problems: Array<{ path: string; problem: "hash-mismatch"; detail: string }> = []
      c.send((w) => w.u64(Worker.Op.VerifyStore).bool(true).bool(false))
      yield* c.processStderr({ onMessage: (m) => { if (m._tag === "Next") problems.push({ path: "", problem: "hash-mismatch", detail: m.text.trim() }) } })
      const errors = yield* c.read(Wire.bool())
      return { checked: 0, problems: errors ? problems.filter((p) => !p.detail.startsWith("checking")) : [] }
    })),
    collectGarbage: (gc = {}) => withConnection("collect garbage", (c) => Effect.gen(function*() {
      const action = gc.paths ? Worker.GcAction.DeleteSpecific : gc.dryRun ? Worker.GcAction.ReturnDead : Worker.GcAction.DeleteDead
      c.send((w) => w.u64(Worker.Op.CollectGarbage).u64(action).strings(gc.paths ?? []).bool(false).u64(BigInt.asUintN(64, -1n)).u64(0).u64(0).u64(0))
      yield* c.processStderr()
      const deleted = yield* c.read(Worker.storePathStrings())
      const bytesFreed = yield* c.read(Wire.u64Clamped())
      yield* c.read(Wire.u64Clamped())
      return { roots: [], deleted, bytesFreed }
    }))
  }

  const daemonVersion = withConnection("connect", (c) => Effect.succeed(c.daemonNixVersion))
  return { read, write, build, maintenance, daemonVersion }
})

/** Turns the daemon's build activities into b3 build events and log chunks. */
const buildHandler = (options: BuildOptions): StderrHandler & { readonly finish: () => void } => {
  const builds = new Map<number, string>()
  const encoder = new TextEncoder()
  const emit = (e: BuildEvent) => options.onEvent?.(e)
  return {
    onMessage: (m) => {
      if (m._tag === "StartActivity" && m.type === Worker.ActivityType.Build) {
        const drvPath = typeof m.fields[0] === "string" ? m.fields[0] : m.text
        builds.set(m.id, drvPath)
        emit({ type: "building", drvPath })
      } else if (m._tag === "StopActivity") {
        const drvPath = builds.get(m.id)
        if (drvPath !== undefined) builds.delete(m.id)
      } else if (m._tag === "Result" && m.type === Worker.ResultType.BuildLogLine) {
        const drvPath = builds.get(m.id)
        if (drvPath !== undefined && typeof m.fields[0] === "string") options.onLog?.(drvPath, encoder.encode(m.fields[0] + "\n"))
      }
    },
    finish: () => builds.clear()
  }
}

export { DaemonOpError }
