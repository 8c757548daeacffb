/**
 * The serve protocol server (`nix-store --serve [--write]`, protocol 2.7 as Nix 2.8's): what an
 * `ssh://` store or a remote-build client talks to on the far side of ssh, on stdin and stdout.
 * It serves the store of the context: StoreRead, and with `write` StoreWrite and StoreBuild.
 *
 * As in Nix, the protocol has no error channel: a failed command is reported on stderr and ends
 * the session (the client sees the connection close). Build logs go to stderr as they arrive,
 * which ssh carries to the client (Nix's build hook shows them as the build's log).
 */
import { Effect, Option, Result, Schema, Stream } from "effect"
import type { Readable, Writable } from "node:stream"
import * as Derivation from "../../core/derivation/index.ts"
import * as StorePath from "../../core/store-path.ts"
import { Serve, Wire, Worker } from "../../core/wire/index.ts"
import { WireWriter } from "../../core/wire/encoder.ts"
import { readableChunkSource, WireReader, WireSink } from "../../io/wire-io.ts"
import * as Tree from "../../nar/tree.ts"
import { computeClosure } from "../../services/closure.ts"
import type { PathInfo } from "../../core/path-info.ts"
import { StoreBuild, type BasicBuildResult, type BuildOptions } from "../../services/store-build.ts"
import { StoreRead } from "../../services/store-read.ts"
import { StoreWrite } from "../../services/store-write.ts"

export class ServeFailed extends Schema.TaggedError<ServeFailed>()("ServeFailed", { reason: Schema.String }) {
  override get message() { return this.reason }
}

export interface ServeOptions {
  /** `--write`: importing paths and building are allowed. */
  readonly write: boolean
  /** Where build logs and messages go (stderr). */
  readonly log: (chunk: Uint8Array | string) => void
}

const fail = (reason: string) => Effect.fail(new ServeFailed({ reason }))

/** Serves one session on `input`/`output` until the client closes its end. */
export const serve = (input: Readable, output: Writable, options: ServeOptions): Effect.Effect<void, unknown, StoreRead> =>
  Effect.gen(function*() {
    const read = yield* StoreRead
    const write = Option.getOrUndefined(yield* Effect.serviceOption(StoreWrite))
    const build = Option.getOrUndefined(yield* Effect.serviceOption(StoreBuild))
    const storeDir = read.storeDir
    const reader = new WireReader(readableChunkSource(input))
    const sink = new WireSink(output)
    const reply = (f: (w: WireWriter) => void) => { const w = new WireWriter(); f(w); sink.push(w.take()) }
    const paths = (list: ReadonlyArray<string>) => Effect.mapError(Effect.fromResult(Worker.parsePaths(list, storeDir)), (e) => new ServeFailed({ reason: e.reason }))
    const print = (p: StorePath.StorePath) => StorePath.print(p, storeDir)
    const needWrite = (what: string) => options.write ? Effect.void : fail(`${what} is not allowed (run with --write)`)

    const magic = yield* reader.run(Wire.u64Clamped("the serve protocol magic"))
    if (magic !== Serve.SERVE_MAGIC_1) return yield* fail("protocol mismatch")
    reply((w) => w.u64(Serve.SERVE_MAGIC_2).u64(Serve.SERVE_PROTOCOL_VERSION))
    yield* sink.flush()
    const clientVersion = yield* reader.run(Wire.uint("the client version"))
    const minor = clientVersion & 0xff

    const buildOptions = (settings: Serve.BuildSettings): BuildOptions => {
      return {
        maxJobs: 1,
        ...(settings.maxSilentTime > 0 ? { maxSilentSeconds: settings.maxSilentTime } : {}),
        ...(settings.buildTimeout > 0 ? { timeoutSeconds: settings.buildTimeout } : {}),
        onLog: (_drv, chunk) => options.log(chunk)
      }
    }

    while (true) {
      if (yield* reader.atEnd()) return
      const cmd = yield* reader.run(Wire.u64Clamped("a command"))
      yield* handle(cmd)
      yield* sink.flush()
    }

    function handle(cmd: number): Effect.Effect<void, unknown> {
      return Effect.gen(function*() {
        switch (cmd) {
          case Serve.Command.QueryValidPaths: {
            yield* reader.run(Wire.bool("the lock flag"))
            yield* reader.run(Wire.bool("the substitute flag"))
            const list = yield* paths(yield* reader.run(Worker.storePathStrings()))
            const valid = yield* read.queryValidPaths(list)
            reply((w) => Worker.writePaths(w, valid, storeDir))
            return
          }
          case Serve.Command.QueryPathInfos: {
            const list = yield* paths(yield* reader.run(Worker.storePathStrings()))
            const infos = yield* Effect.forEach(list, (p) => read.queryPathInfo(p).pipe(
              Effect.map(Option.some), Effect.catchTag("PathNotValid", () => Effect.succeed(Option.none<PathInfo>()))), { concurrency: 8 })
            reply((w) => {
              for (const info of infos) if (Option.isSome(info)) Serve.writeServePathInfo(w, info.value, storeDir, minor)
              w.string("")
            })
            return
          }
          case Serve.Command.DumpStorePath: {
            const [p] = yield* paths([yield* reader.run(Worker.storePathString())])
            yield* sink.flush()
            yield* Stream.runForEach(read.narFromPath(p!), (chunk) => sink.write(chunk))
            return
          }
          case Serve.Command.QueryClosure: {
            const includeOutputs = yield* reader.run(Wire.bool("includeOutputs"))
            const list = yield* paths(yield* reader.run(Worker.storePathStrings()))
            let closure = yield* computeClosure(list).pipe(Effect.provideService(StoreRead, read))
            if (includeOutputs) {
              // outputs of the derivations in the closure, where known, and their closures
              const outs: Array<StorePath.StorePath> = []
              for (const p of closure) {
                if (!p.name.endsWith(".drv")) continue
                const drv = yield* Effect.option(readDrv(p))
                if (Option.isNone(drv)) continue
                for (const o of drv.value.outputs.values()) {
                  const path = Derivation.outputPath(o)
                  if (path === undefined) continue
                  const parsed = StorePath.parse(path, storeDir)
                  if (Result.isSuccess(parsed)) outs.push(parsed.success)
                }
              }
              const valid = yield* read.queryValidPaths(outs)
              closure = yield* computeClosure([...closure, ...valid]).pipe(Effect.provideService(StoreRead, read))
            }
            reply((w) => Worker.writePaths(w, closure, storeDir))
            return
          }
          case Serve.Command.AddToStoreNar: {
            yield* needWrite("importing paths")
            const s = yield* reader.run(Worker.storePathString())
            const raw = yield* reader.run(Worker.rawPathInfo(16))
            if (raw.narSize === 0) return yield* fail("narInfo is too old and missing the narSize field")
            const nar = reader.exact(raw.narSize, "a NAR")
            const [path] = yield* paths([s])
            const info = yield* Effect.mapError(Effect.fromResult(Worker.validatePathInfo(path!, raw, storeDir)), (e) => new ServeFailed({ reason: e.reason }))
            if (!write) return yield* fail(`store '${read.uri}' is read-only`)
            yield* write.addToStore(info as PathInfo, nar)
            reply((w) => w.u64(1))
            return
          }
          case Serve.Command.BuildDerivation: {
            yield* needWrite("building paths")
            const s = yield* reader.run(Worker.storePathString())
            const raw = yield* reader.run(Worker.rawDerivation())
            const settings = yield* reader.run(Serve.buildSettings(minor))
            const [drvPath] = yield* paths([s])
            const drv = yield* Effect.mapError(Effect.fromResult(Worker.validateDerivation(raw, Derivation.nameFromDrvPath(StorePath.baseName(drvPath!)), storeDir)), (e) => new ServeFailed({ reason: e.reason }))
            const start = Math.floor(Date.now() / 1000)
            const outcome: Result.Result<BasicBuildResult, unknown> = build?.buildBasic
              ? yield* Effect.result(build.buildBasic(drvPath!, drv, buildOptions(settings)))
              : Result.fail(new ServeFailed({ reason: `store '${read.uri}' cannot build` }))
            const stop = Math.floor(Date.now() / 1000)
            const hashed = Derivation.hashDerivationModulo(drv, true, { storeDir })
            reply((w) => {
              if (Result.isFailure(outcome)) {
                w.u64(Worker.BuildStatus.PermanentFailure).string(outcome.failure instanceof Error ? outcome.failure.message : String(outcome.failure))
              } else {
                w.u64(outcome.success.status === "built" ? Worker.BuildStatus.Built : Worker.BuildStatus.AlreadyValid).string("")
              }
              if (minor >= 3) w.u64(Result.isSuccess(outcome) && outcome.success.status === "built" ? 1 : 0).bool(false).u64(start).u64(stop)
              if (minor >= 6) {
                const outputs: Array<readonly [string, string]> = []
                if (Result.isSuccess(outcome) && Result.isSuccess(hashed)) {
                  for (const [name, p] of Object.entries(outcome.success.outputs)) {
                    const h = hashed.success.hashes.get(name)
                    if (h === undefined) continue
                    const id = Worker.drvOutputId(h, name)
                    outputs.push([id, Worker.realisationJson(id, p)])
                  }
                }
                Worker.writeBuildOutputs(w, outputs)
              }
            })
            return
          }
          case Serve.Command.BuildPaths: {
            yield* needWrite("building paths")
            const strings = yield* reader.run(Wire.strings("paths", Wire.limits.listLength, 2 * Worker.maxPathLength))
            const settings = yield* reader.run(Serve.buildSettings(minor))
            const targets = yield* Effect.forEach(strings, (t) => Effect.mapError(Effect.fromResult(Worker.parseDerivedPath(t, storeDir)), (e) => new ServeFailed({ reason: e.reason })))
            const drvs = targets.flatMap((t) => t._tag === "Built" ? [t.drvPath] : [])
            const missing = (yield* read.queryValidPaths(targets.flatMap((t) => t._tag === "Opaque" ? [t.path] : []))).length
              !== targets.filter((t) => t._tag === "Opaque").length
            const outcome: Result.Result<unknown, unknown> = missing ? Result.fail(new ServeFailed({ reason: "some paths are not valid and cannot be substituted" }))
              : drvs.length === 0 ? Result.succeed([])
              : build ? yield* Effect.result(build.buildDerivations(drvs, buildOptions(settings)))
              : Result.fail(new ServeFailed({ reason: `store '${read.uri}' cannot build` }))
            reply((w) => {
              if (Result.isSuccess(outcome)) w.u64(0)
              else w.u64(Worker.BuildStatus.PermanentFailure).string(outcome.failure instanceof Error ? outcome.failure.message : String(outcome.failure))
            })
            return
          }
          default:
            return yield* fail(`unknown serve command ${cmd}`)
        }
      })
    }

    function readDrv(p: StorePath.StorePath) {
      return Effect.gen(function*() {
        const chunks = yield* Stream.runCollect(read.narFromPath(p))
        const tree = Tree.fromNar(Buffer.concat([...chunks]))
        if (Result.isFailure(tree) || tree.success._tag !== "Regular") return yield* fail("not a derivation")
        const parsed = Derivation.parse(tree.success.contents, { name: Derivation.nameFromDrvPath(StorePath.baseName(p)), storeDir })
        return Result.isSuccess(parsed) ? parsed.success : yield* fail(parsed.failure.message)
      })
    }
  })
