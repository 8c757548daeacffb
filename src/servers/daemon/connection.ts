/**
 * One client connection of the worker-protocol daemon, as Nix 2.8's `processConnection`: the
 * handshake (magic numbers, version negotiation, the daemon's version for 1.33+), then ops until
 * the client hangs up. An op's failure reaches the client as an error message and the connection
 * goes on; bytes that do not follow the protocol (garbage, truncated or oversized frames) end the
 * connection, after telling the client why, and nothing of a half-received path is registered.
 */
import { Effect, Schema } from "effect"
import { Wire, Worker } from "../../core/wire/index.ts"
import { WireWriter } from "../../core/wire/encoder.ts"
import type { FramedReader, WireReader, WireSink } from "../../io/wire-io.ts"
import type { DaemonBackend, DaemonOptions } from "./backend.ts"
import { handlers } from "./ops.ts"
import { Tunnel } from "./tunnel.ts"

/** An op the client may not or cannot run here; the connection continues. */
export class OpFailed extends Schema.TaggedError<OpFailed>()("OpFailed", { message: Schema.String }) {}

export interface TempRoots {
  /** Paths held as roots by live connections (added with AddTempRoot). */
  readonly all: () => ReadonlyArray<string>
  readonly forConnection: () => { readonly add: (path: string) => void; readonly release: () => void }
}

export interface Conn {
  readonly reader: WireReader
  readonly sink: WireSink
  readonly tunnel: Tunnel
  readonly minor: number
  readonly backend: DaemonBackend
  readonly options: DaemonOptions
  readonly storeDir: string
  readonly tempRoots: TempRoots
  readonly addTempRoot: (path: string) => void
  settings: Worker.ClientSettings | undefined
  /** The framed stream an op is reading, drained when the op fails so the connection stays in step. */
  framed: FramedReader | undefined
}

const wireTags = new Set(["WireTruncated", "WireTooLarge", "WireMalformed", "WireClosed"])
const isWireError = (e: unknown): boolean =>
  typeof e === "object" && e !== null && wireTags.has((e as { _tag?: string })._tag ?? "")

export const messageOf = (e: unknown): string =>
  e instanceof Error ? e.message : typeof e === "object" && e !== null && "message" in e ? String((e as { message: unknown }).message) : String(e)

const write = (sink: WireSink, f: (w: WireWriter) => void) => {
  const w = new WireWriter(64)
  f(w)
  sink.push(w.take())
}

/** Serves one connection until the client leaves or breaks the protocol. Never fails. */
export const serveConnection = (
  reader: WireReader,
  sink: WireSink,
  backend: DaemonBackend,
  options: DaemonOptions,
  tempRoots: TempRoots,
  peer: string
): Effect.Effect<void> => Effect.gen(function*() {
  const log = options.log ?? (() => {})
  const magic = yield* reader.run(Wire.u64Clamped("the worker protocol magic"))
  if (magic !== Worker.WORKER_MAGIC_1) {
    log(`${peer}: protocol mismatch (magic 0x${magic.toString(16)})`)
    return
  }
  write(sink, (w) => w.u64(Worker.WORKER_MAGIC_2).u64(Worker.PROTOCOL_VERSION))
  yield* sink.flush()
  const clientVersion = yield* reader.run(Wire.uint("the client version"))
  const minor = Worker.protocolMinor(clientVersion)
  const tunnel = new Tunnel(sink, minor)
  if (Worker.protocolMajor(clientVersion) !== Worker.protocolMajor(Worker.PROTOCOL_VERSION) || clientVersion < Worker.MIN_CLIENT_VERSION) {
    tunnel.startWork()
    tunnel.stopWorkWithError("the Nix client version is too old")
    yield* sink.flush()
    return
  }
  if (minor >= 14 && (yield* reader.run(Wire.bool("the CPU affinity flag")))) yield* reader.run(Wire.u64("a CPU affinity"))
  if (minor >= 11) yield* reader.run(Wire.u64("reserveSpace"))
  if (minor >= 33) write(sink, (w) => w.string(options.version))
  tunnel.startWork()
  tunnel.stopWork()
  yield* sink.flush()
  log(`${peer}: accepted connection (protocol 1.${minor}, ${options.trusted ? "trusted" : "untrusted"})`)

  const roots = tempRoots.forConnection()
  yield* Effect.addFinalizer(() => Effect.sync(roots.release))
  const conn: Conn = {
    reader, sink, tunnel, minor, backend, options, storeDir: backend.read.storeDir, tempRoots,
    addTempRoot: roots.add, settings: undefined, framed: undefined
  }
  let ops = 0
  while (true) {
    if (yield* reader.atEnd()) break
    const op = yield* reader.run(Wire.u64Clamped("an operation"))
    ops++
    const handler = handlers.get(op)
    if (!handler) {
      // Its arguments are unknown, so the rest of the stream cannot be followed: end here.
      if (!tunnel.working) tunnel.startWork()
      tunnel.stopWorkWithError(`invalid operation ${op}`)
      yield* sink.flush()
      log(`${peer}: unsupported operation ${op}; closing`)
      break
    }
    conn.framed = undefined
    const outcome = yield* Effect.result(handler(conn))
    if (outcome._tag === "Failure") {
      const error = outcome.failure
      if (isWireError(error)) {
        // The client broke the protocol (or went away): tell it, if it still listens, and stop.
        log(`${peer}: ${Worker.opName(op)}: ${messageOf(error)}; closing`)
        if (!tunnel.working) tunnel.startWork()
        tunnel.stopWorkWithError(messageOf(error))
        yield* Effect.ignore(sink.flush())
        break
      }
      const framed = conn.framed as FramedReader | undefined
      if (framed) {
        const drained = yield* Effect.result(framed.drain())
        if (drained._tag === "Failure") {
          log(`${peer}: ${Worker.opName(op)}: ${messageOf(drained.failure)}; closing`)
          break
        }
      }
      if (!tunnel.working) tunnel.startWork()
      tunnel.stopWorkWithError(messageOf(error))
    }
    yield* sink.flush()
  }
  log(`${peer}: closed after ${ops} operations`)
}).pipe(
  Effect.scoped,
  Effect.catchCause((cause) => Effect.sync(() => options.log?.(`${peer}: ${messageOf(cause)}`)))
)
