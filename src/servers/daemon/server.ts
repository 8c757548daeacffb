/**
 * `b3 daemon`: Nix's worker protocol on a unix socket, over any store. The socket and every
 * connection are resources of the caller's scope: when it closes (Ctrl-C), the socket stops
 * accepting, open connections are cut and their fibers interrupted (a path being added is
 * abandoned, never half-registered), and the socket file is removed.
 *
 * Who may connect is up to the socket file's owner, group and mode; whether connected clients
 * are trusted (Nix's trusted-users) is the `trusted` option.
 */
import { Effect, FiberSet, Schema, type Scope } from "effect"
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, rmSync } from "node:fs"
import { createServer, type Server, type Socket } from "node:net"
import { dirname } from "node:path"
import { readableChunkSource, WireReader, WireSink } from "../../io/wire-io.ts"
import { listenUnix } from "../../io/unix-socket.ts"
import { backendFromContext, type DaemonBackend, type DaemonOptions } from "./backend.ts"
import type { StoreRead } from "../../services/store-read.ts"
import { serveConnection, type TempRoots } from "./connection.ts"

export class DaemonError extends Schema.TaggedError<DaemonError>()("DaemonError", { socket: Schema.String, reason: Schema.String }) {
  override get message() { return `cannot serve on '${this.socket}': ${this.reason}` }
}

/** Where each connection's store comes from: acquired when it opens, released when it ends. */
export type BackendSource = Effect.Effect<{ readonly backend: DaemonBackend; readonly release: Effect.Effect<void> }>

export interface ListenOptions extends DaemonOptions {
  /** Per-connection stores (e.g. reopened after the store was recreated); default: the context's store for all. */
  readonly backends?: BackendSource | undefined
  readonly socketPath: string
  /** The socket file's mode (default 0o666, as Nix's: anyone may connect; narrow it to restrict). */
  readonly mode?: number | undefined
  /** Group (gid) to give the socket file, so that a mode like 0o660 admits that group. */
  readonly gid?: number | undefined
}

/** Temporary roots held by live connections, shared by all of them (the GC keeps them all). */
const makeTempRoots = (): TempRoots => {
  const byConnection = new Set<Set<string>>()
  return {
    all: () => [...new Set([...byConnection].flatMap((s) => [...s]))].sort(),
    forConnection: () => {
      const mine = new Set<string>()
      byConnection.add(mine)
      return { add: (p) => { mine.add(p) }, release: () => { byConnection.delete(mine) } }
    }
  }
}

/**
 * Listens on the socket until the scope closes; returns once it accepts connections. Serves the
 * store of the context: StoreRead, and StoreWrite, StoreBuild, StoreMaintenance where present.
 */
export const listen = (options: ListenOptions): Effect.Effect<void, DaemonError, Scope.Scope | StoreRead> =>
  Effect.gen(function*() {
    const shared = yield* backendFromContext
    // what the first client's first write would wait for (a local store's lock and sync helpers) is started now
    const prepare = shared.maintenance?.prepareForClients
    if (prepare) yield* prepare()
    const backends: BackendSource = options.backends ?? Effect.succeed({ backend: shared, release: Effect.void })
    const socketPath = options.socketPath
    const fail = (reason: string) => new DaemonError({ socket: socketPath, reason })
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    const tempRoots = makeTempRoots()
    const sockets = new Set<Socket>()
    let counter = 0
    let active = 0
    /** When the last client leaves, the store's own temporary roots (paths added for clients) go too. */
    const connectionEnded = (backend: DaemonBackend) => Effect.suspend(() => {
      active--
      const release = backend.maintenance?.releaseTempRoots
      return active === 0 && release ? Effect.ignore(release()) : Effect.void
    })

    const onConnection = (socket: Socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      socket.on("error", () => { /* reported to the connection's reader and sink */ })
      const peer = `connection ${++counter}`
      const reader = new WireReader(readableChunkSource(socket))
      const sink = new WireSink(socket)
      run(Effect.acquireUseRelease(
        Effect.tap(backends, () => Effect.sync(() => { active++ })),
        ({ backend }) => serveConnection(reader, sink, backend, options, tempRoots, peer),
        ({ backend, release }) => Effect.andThen(connectionEnded(backend), release)).pipe(
        Effect.ensuring(Effect.sync(() => socket.end()))))
    }

    const server = yield* Effect.acquireRelease(
      Effect.callback<{ server: Server; cleanup: () => void }, DaemonError>((resume) => {
        try {
          mkdirSync(dirname(socketPath), { recursive: true })
          if (existsSync(socketPath)) {
            if (!lstatSync(socketPath).isSocket()) return resume(Effect.fail(fail("a file that is not a socket is in the way")))
            rmSync(socketPath) // a stale socket left by a daemon that died
          }
        } catch (e) {
          return resume(Effect.fail(fail(e instanceof Error ? e.message : String(e))))
        }
        const server = createServer({ allowHalfOpen: false }, onConnection)
        listenUnix(server, socketPath).then((cleanup) => {
          try {
            chmodSync(socketPath, options.mode ?? 0o666)
            if (options.gid !== undefined) chownSync(socketPath, process.getuid?.() ?? 0, options.gid)
          } catch (e) {
            server.close()
            cleanup()
            return resume(Effect.fail(fail(e instanceof Error ? e.message : String(e))))
          }
          resume(Effect.succeed({ server, cleanup }))
        }, (e: Error) => resume(Effect.fail(fail(e.message))))
      }),
      ({ server, cleanup }) => Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const s of sockets) s.destroy()
        cleanup()
        try { rmSync(socketPath, { force: true }) } catch { /* gone */ }
      })
    )
    server.server.on("error", (e) => options.log?.(`socket error: ${e.message}`))
  })
