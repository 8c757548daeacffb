/**
 * Daemons for tests, as Scope resources: `b3 daemon` (the CLI, as a user runs it) and Nix's own
 * `nix-daemon`, each on a private socket in a temp dir over a chroot store. Each is started, waited
 * for (b3 prints a line once it listens; nix-daemon's socket file appears), and killed and reaped
 * when the scope closes.
 */
import { Effect, type Scope } from "effect"
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

/** `b3 daemon --store STORE --socket SOCKET ARGS…` (in `env`, default the test's), ready when it has printed its JSON line. */
export const startB3Daemon = (store: string, socket: string, args: ReadonlyArray<string> = [], env?: NodeJS.ProcessEnv): Effect.Effect<RunningDaemon, Error, Scope.Scope> =>
  Effect.acquireRelease(Effect.callback<RunningDaemon, Error>((resume) => {
    const child = spawn(b3Bin, ["--json", "--verbose", "daemon", "--store", store, "--socket", socket, ...args], { stdio: ["ignore", "pipe", "pipe"], ...(env ? { env } : {}) })
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
 * Runs a command with a unix socket already listening on `path`, handed over as systemd does
 * (socket activation: fd 3, LISTEN_FDS=1, LISTEN_PID; nix-daemon 2.8 takes it). The socket listens
 * under a temporary name and is renamed into place, so once `path` exists connections are accepted
 * (queued until the daemon takes them): nothing has to be polled.
 */
const socketActivation = `import os, socket, sys
path = sys.argv[1]
tmp = path + ".listening"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(tmp)
os.chmod(tmp, 0o666)
s.listen(128)
os.rename(tmp, path)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execvp(sys.argv[2], sys.argv[2:])
`

/** Nix 2.8's `nix-daemon` serving the chroot store at `root` on `socket` (socket-activated, see above). */
export const startNixDaemon = (root: string, socket: string, extraArgs: ReadonlyArray<string> = []): Effect.Effect<RunningDaemon, Error, Scope.Scope> =>
  Effect.acquireRelease(Effect.gen(function*() {
    const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"
    const child = spawn(python, ["-c", socketActivation, socket, "nix-daemon", "--store", root, ...extraArgs], {
      env: { ...nixEnv, NIX_DAEMON_SOCKET_PATH: socket }, stdio: ["ignore", "ignore", "pipe"]
    })
    let err = ""
    child.stderr!.on("data", (d) => { err += d.toString() })
    const exited = Effect.callback<never, Error>((resume) => { child.once("exit", (code) => resume(Effect.fail(new Error(`nix-daemon exited (${code}): ${err}`)))) })
    yield* Effect.raceFirst(appears(socket), exited)
    return { socket, uri: `unix://${socket}`, process: child, stderr: () => err }
  }), (d) => stop(d.process))
