/**
 * Nix's `post-build-hook` (derivation-goal.cc `runPostBuildHook`): after a build's outputs are
 * registered, a program runs on the host, outside any sandbox, as the user b3 runs as, with the
 * host's environment plus DRV_PATH, OUT_PATHS and NIX_CONFIG. Its stdout and stderr are handed on
 * line by line, a last line without a newline too. (Nix merges stderr into the stdout pipe; here
 * they are two pipes, each read in whole lines, so lines of the two may interleave differently.)
 * It is not searched for in PATH (Nix's runProgram2 execs the path as given). Exit 0 is success;
 * anything else is `PostBuildHookFailed`, worded as Nix's ExecError. The process is a resource of
 * the scope: closing the scope before it exits kills its process group and waits for it.
 *
 * NIX_CONFIG (`defaultEnv`) is only added where the host's environment has none: Nix `emplace`s
 * it into a copy of its own environment, so a daemon started with NIX_CONFIG hands the hook that.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { constants as osConstants } from "node:os"
import { Effect, type Scope } from "effect"
import type { HookSpec } from "../../services/sandbox.ts"
import { PostBuildHookFailed } from "../../services/store-build.ts"

interface Running {
  readonly child: ChildProcess
  /** Whether it has exited and its output pipes are closed (what it started has let go of them too). */
  readonly closed: () => boolean
  /** The exit status in Nix's words ("" for exit 0), once it has exited. */
  readonly exited: Promise<string>
}

const start = (spec: HookSpec): Running => {
  const child = spawn(spec.program.includes("/") ? spec.program : `./${spec.program}`, [], {
    env: { ...spec.defaultEnv, ...process.env, ...spec.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true // its own process group, so a kill reaches what it started too
  })
  // each stream split in lines of its own: Node cannot hand both the same pipe as Nix does
  const lineReader = () => {
    const decoder = new TextDecoder()
    let partial = ""
    return {
      take: (chunk: Buffer) => {
        const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n")
        partial = lines.pop()!
        for (const line of lines) spec.onLine?.(line)
      },
      flush: () => { if (partial !== "") spec.onLine?.(partial); partial = "" }
    }
  }
  const out = lineReader(), err = lineReader()
  child.stdout!.on("data", out.take)
  child.stderr!.on("data", err.take)
  let closed = false
  const exited = new Promise<string>((resolve) => {
    let spawnError: string | undefined
    // as in Nix, where the forked child reports the failed exec on its stderr and exits 1
    child.on("error", (e: NodeJS.ErrnoException) => {
      spec.onLine?.(`error: executing '${spec.program}': ${e.code === "ENOENT" ? "No such file or directory" : e.code === "EACCES" ? "Permission denied" : e.message}`)
      spawnError = "failed with exit code 1"
    })
    // 'close': the process has exited and its output pipes are drained
    child.on("close", (code, signal) => {
      closed = true
      out.flush()
      err.flush()
      resolve(spawnError ?? (signal !== null ? `failed due to signal ${signalNumber(signal)}` : code === 0 ? "" : `failed with exit code ${code}`))
    })
  })
  return { child, closed: () => closed, exited }
}

/** A signal's number, as Nix's statusToString prints it ("failed due to signal 9"). */
const signalNumber = (signal: NodeJS.Signals): number | string => osConstants.signals[signal] ?? signal

/** Kills its process group unless all is over (the hook may have exited, leaving a child that holds its output). */
const stop = (running: Running) => Effect.promise(async () => {
  if (!running.closed() && running.child.pid !== undefined) {
    try { process.kill(-running.child.pid, "SIGKILL") } catch { /* already gone */ }
  }
  await running.exited
})

/** Runs the hook and waits for it to exit (see the module comment). */
export const runHook = (spec: HookSpec): Effect.Effect<void, PostBuildHookFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const running = yield* Effect.acquireRelease(Effect.sync(() => start(spec)), stop)
    const status = yield* Effect.promise(() => running.exited)
    if (status !== "") return yield* new PostBuildHookFailed({ drvPath: spec.drvPath, program: spec.program, status })
  })
