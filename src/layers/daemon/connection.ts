/**
 * One connection to a Nix daemon (worker protocol 1.34, as Nix 2.8's RemoteStore): the handshake,
 * SetOptions, and reading the stderr messages that precede every reply. A daemon-side error
 * (STDERR_ERROR) fails the op but leaves the connection usable; anything else (a broken socket,
 * bytes that do not parse) makes it unusable, and the pool drops it.
 */
import { Effect, Schema } from "effect"
import { connect, type Socket } from "node:net"
import { Wire, Worker } from "../../core/wire/index.ts"
import { WireWriter } from "../../core/wire/encoder.ts"
import type { Decoder } from "../../core/wire/decoder.ts"
import { readableChunkSource, WireClosed, WireReader, WireSink, type WireIoError } from "../../io/wire-io.ts"

/** An error the daemon reported for one op (the connection stays usable). */
export class DaemonOpError extends Schema.TaggedError<DaemonOpError>()("DaemonOpError", { message: Schema.String, status: Schema.Number }) {}

export type ConnectionError = WireIoError | DaemonOpError

/** What the client does with the daemon's log and activities while an op runs. */
export interface StderrHandler {
  readonly onMessage?: (msg: Worker.StderrMessage) => void
}

export class DaemonConnection {
  readonly socket: Socket
  readonly reader: WireReader
  readonly sink: WireSink
  daemonVersion = 0
  daemonNixVersion = ""
  /** False once the connection can no longer be trusted to be in step with the daemon. */
  good = true

  constructor(socket: Socket) {
    this.socket = socket
    this.reader = new WireReader(readableChunkSource(socket))
    this.sink = new WireSink(socket)
  }

  get minor(): number { return Worker.protocolMinor(this.daemonVersion) }

  send(f: (w: WireWriter) => void): void {
    const w = new WireWriter()
    f(w)
    this.sink.push(w.take())
  }

  read<A>(d: Decoder<A>): Effect.Effect<A, WireIoError> { return this.reader.run(d) }

  /** Reads stderr messages up to LAST (then succeeds) or ERROR (then fails with DaemonOpError). */
  processStderr(handler: StderrHandler = {}, flush = true): Effect.Effect<void, ConnectionError> {
    const self = this
    return Effect.gen(function*() {
      if (flush) yield* self.sink.flush()
      while (true) {
        const msg = yield* self.reader.run(Worker.stderrMessage(self.minor))
        if (msg._tag === "Last") return
        if (msg._tag === "Error") return yield* new DaemonOpError({ message: msg.message, status: msg.status })
        if (msg._tag === "Read" || msg._tag === "Write") {
          return yield* new WireClosed({ reason: `the daemon sent a ${msg._tag === "Read" ? "read" : "write"} request b3 does not use` })
        }
        handler.onMessage?.(msg)
      }
    })
  }

  close(): void {
    this.good = false
    this.socket.destroy()
  }
}

export interface ClientOptions {
  readonly maxBuildJobs: number
  readonly buildCores: number
  readonly keepGoing: boolean
  readonly maxSilentTime: number
  readonly overrides: ReadonlyArray<readonly [string, string]>
}

/** Connects, shakes hands and sends the options; fails with WireClosed when the daemon is not there. */
export const openConnection = (socketPath: string, options: ClientOptions): Effect.Effect<DaemonConnection, ConnectionError> =>
  Effect.gen(function*() {
    const socket = yield* Effect.callback<Socket, WireClosed>((resume) => {
      const s = connect(socketPath)
      const onError = (e: Error) => resume(Effect.fail(new WireClosed({ reason: `cannot connect to daemon at '${socketPath}': ${e.message}` })))
      s.once("error", onError)
      s.once("connect", () => { s.off("error", onError); s.on("error", () => {}); resume(Effect.succeed(s)) })
    })
    const conn = new DaemonConnection(socket)
    return yield* Effect.gen(function*() {
      conn.send((w) => w.u64(Worker.WORKER_MAGIC_1))
      yield* conn.sink.flush()
      const magic = yield* conn.read(Wire.u64Clamped("the daemon's magic"))
      if (magic !== Worker.WORKER_MAGIC_2) return yield* new WireClosed({ reason: `'${socketPath}' does not speak Nix's worker protocol` })
      conn.daemonVersion = yield* conn.read(Wire.uint("the daemon's protocol version"))
      if (Worker.protocolMajor(conn.daemonVersion) !== Worker.protocolMajor(Worker.PROTOCOL_VERSION) || conn.minor < 21) {
        return yield* new WireClosed({ reason: `the daemon speaks protocol ${conn.daemonVersion >> 8}.${conn.minor}; b3 needs 1.21 or later` })
      }
      conn.send((w) => {
        w.u64(Worker.PROTOCOL_VERSION)
        if (conn.minor >= 14) w.u64(0)
        if (conn.minor >= 11) w.u64(0)
      })
      yield* conn.sink.flush()
      if (conn.minor >= 33) conn.daemonNixVersion = yield* conn.read(Wire.string("the daemon's version", 1024))
      yield* conn.processStderr()
      conn.send((w) => {
        w.u64(Worker.Op.SetOptions)
        Worker.writeClientSettings(w, {
          keepFailed: false, keepGoing: options.keepGoing, tryFallback: false, verbosity: Worker.Verbosity.Error,
          maxBuildJobs: options.maxBuildJobs, maxSilentTime: options.maxSilentTime, verboseBuild: true,
          buildCores: options.buildCores, useSubstitutes: false, overrides: options.overrides
        })
      })
      yield* conn.processStderr()
      return conn
    }).pipe(Effect.tapError(() => Effect.sync(() => conn.close())))
  })
