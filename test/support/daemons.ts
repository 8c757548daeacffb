/**
 * Daemons for tests, as Scope resources: `b3 daemon` (the CLI, as a user runs it) and Nix's own
 * `nix-daemon`, each on a private socket in a temp dir over a chroot store. Each is started, waited
 * for (b3 prints a line once it listens; nix-daemon's socket file appears), and killed and reaped
 * when the scope closes.
 */
import { Effect, type Scope } from "effect"
import { connect } from "node:net"
import { spawn, type ChildProcess } from "node:child_process"
import { existsSync, watch } from "node:fs"
import { dirname, basename } from "node:path"
import { b3Bin } from "./b3.ts"
import { nixEnv } from "./nix.ts"

export interface RunningDaemon {
  readonly socket: string
  readonly uri: string
  readonly process: ChildProcess
  /** Everything the daemon wrote on stderr so far. */
  readonly stderr: () => string
}

const stop = (child: ChildProcess) => Effect.callback<void>((resume) => {
  if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
  child.once("exit", () => resume(Effect.void))
  child.kill("SIGTERM")
})

/** `b3 daemon --store STORE --socket SOCKET ARGS…`, ready when it has printed its JSON line. */
export const startB3Daemon = (store: string, socket: string, args: ReadonlyArray<string> = []): Effect.Effect<RunningDaemon, Error, Scope.Scope> =>
  Effect.acquireRelease(Effect.callback<RunningDaemon, Error>((resume) => {
    const child = spawn(b3Bin, ["--json", "--verbose", "daemon", "--store", store, "--socket", socket, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let err = ""
    let out = ""
    child.stderr!.on("data", (d) => { err += d.toString() })
    child.stdout!.on("data", (d) => {
      out += d.toString()
      if (out.includes("\n")) resume(Effect.succeed({ socket, uri: `unix://${socket}`, process: child, stderr: () => err }))
    })
    child.once("exit", (code) => resume(Effect.fail(new Error(`b3 daemon exited (${code}): ${err}`))))
  }), (d) => stop(d.process))

/** Waits (without polling) until `path` exists. */
const appears = (path: string) => Effect.callback<void>((resume) => {
  const watcher = watch(dirname(path), (_, name) => {
    if ((name === basename(path) || name === null) && existsSync(path)) { watcher.close(); resume(Effect.void) }
  })
  if (existsSync(path)) { watcher.close(); resume(Effect.void) }
  return Effect.sync(() => watcher.close())
})

/**
 * Connects to the socket until it accepts (refused while the daemon has bound it but not yet
 * listens), giving up after 30 s. Node timers, not Effect's clock: @effect/vitest's `it.effect`
 * runs on a test clock that does not advance by itself.
 */
const accepts = (path: string) => Effect.callback<void, Error>((resume) => {
  const deadline = Date.now() + 30_000
  let timer: NodeJS.Timeout | undefined
  const attempt = () => {
    const s = connect(path)
    s.once("connect", () => { s.destroy(); resume(Effect.void) })
    s.once("error", (e) => {
      if (Date.now() > deadline) resume(Effect.fail(new Error(`${path} does not accept connections: ${e.message}`)))
      else timer = setTimeout(attempt, 10)
    })
  }
  attempt()
  return Effect.sync(() => clearTimeout(timer))
})

/** Nix 2.8's `nix-daemon` serving the chroot store at `root` on `socket`. */
export const startNixDaemon = (root: string, socket: string, extraArgs: ReadonlyArray<string> = []): Effect.Effect<RunningDaemon, Error, Scope.Scope> =>
  Effect.acquireRelease(Effect.gen(function*() {
    const child = spawn("nix-daemon", ["--store", root, ...extraArgs], {
      env: { ...nixEnv, NIX_DAEMON_SOCKET_PATH: socket }, stdio: ["ignore", "ignore", "pipe"]
    })
    let err = ""
    child.stderr!.on("data", (d) => { err += d.toString() })
    const exited = Effect.callback<never, Error>((resume) => { child.once("exit", (code) => resume(Effect.fail(new Error(`nix-daemon exited (${code}): ${err}`)))) })
    // The socket file appears when nix-daemon binds it, a moment before it listens: then probe it.
    yield* Effect.raceFirst(Effect.andThen(appears(socket), accepts(socket)), exited)
    return { socket, uri: `unix://${socket}`, process: child, stderr: () => err }
  }), (d) => stop(d.process))
