/**
 * Starts the sandbox process and watches it: streams the log (the pseudo-terminal the builder
 * writes to, plus bubblewrap's own stderr), enforces the time and silence limits, and kills the
 * whole process tree on demand. The running build is a Scope resource: closing the scope (also
 * on failure or interruption) kills the tree and waits until it is gone.
 *
 * Killing: the builder is pid 1 of its own pid namespace; SIGKILL to it makes the kernel kill
 * every process in the namespace before the outer bwrap can reap it, so "outer bwrap exited"
 * means "no process of the build is left". bwrap also runs with --die-with-parent, so the tree
 * dies with b3 itself.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { chmodSync, chownSync, closeSync, constants, openSync, readFileSync, readSync } from "node:fs"
import type { Readable, Writable } from "node:stream"
import { ReadStream } from "node:tty"
import { Effect } from "effect"
import type { Scope } from "effect"
import { fds } from "./command.ts"
import { toolDirs } from "./host.ts"

export interface LaunchOptions {
  readonly file: string
  readonly args: ReadonlyArray<string>
  /** Files opened and passed as the helper (fd 3), the seccomp filter (fd 6) and bwrap's options (fd 7). */
  readonly helperPath: string
  readonly seccompPath: string
  readonly argsPath: string
  /** The build user's host uid: owner of the pty's slave side. */
  readonly buildUid: number
  readonly timeoutSeconds?: number | undefined
  readonly maxSilentSeconds?: number | undefined
  readonly onLog: (chunk: Uint8Array) => void
}

export interface Completion {
  /** The limit that made us kill the build, if one did. */
  readonly limit: "timeout" | "silence" | undefined
  /** The builder's exit code as bwrap reports it (128 + n for signal n); undefined if it never ran. */
  readonly exitCode: number | undefined
  /** What the exec helper reported on fd 5 (see exec-helper.ts). */
  readonly status: Uint8Array
  /** bwrap's own stderr (its setup errors), and spawn errors. */
  readonly bwrapStderr: string
  /** bwrap's --json-status-fd output and how the outer bwrap process itself ended (for diagnostics). */
  readonly bwrapStatus: string
  readonly processExit: string
}

export interface RunningBuild {
  /** Completes when the process tree is gone and the log is drained. */
  readonly completion: Effect.Effect<Completion>
}

/**
 * Opens a pty master; its slave (the builder's stdout/stderr) is owned by the build user, 0600, like
 * Nix's. Non-blocking: draining it at the end must not wait for a slave that was never opened (a
 * sandbox that failed before the exec helper opened it).
 */
const openPty = (buildUid: number): number => {
  const master = openSync("/dev/ptmx", constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK)
  let ready = false
  try {
    const index = /tty-index:\s*(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${master}`, "utf8"))?.[1]
    if (index !== undefined) {
      chmodSync(`/dev/pts/${index}`, 0o600)
      chownSync(`/dev/pts/${index}`, buildUid, 0)
    }
    ready = true
    return master
  } finally {
    if (!ready) closeSync(master)
  }
}

const jsonField = (text: string, field: string): number | undefined => {
  for (const line of text.split("\n")) {
    try {
      const value: unknown = JSON.parse(line)?.[field]
      if (typeof value === "number") return value
    } catch {
      // bwrap writes one JSON document per line; skip partial lines
    }
  }
  return undefined
}

const killQuietly = (pid: number | undefined) => {
  if (pid === undefined || !Number.isInteger(pid)) return
  try { process.kill(pid, "SIGKILL") } catch { /* already gone */ }
}

/** setTimeout for `seconds`; none for limits beyond what a timer can hold (~24.8 days). */
const timer = (seconds: number | undefined, run: () => void): NodeJS.Timeout | undefined =>
  seconds === undefined || seconds * 1000 > 0x7fffffff ? undefined : setTimeout(run, Math.max(0, seconds * 1000))

/** How long to wait for bwrap to exit after its child was killed, before killing bwrap too. */
const outerGraceSeconds = 5

/** Spawns the command with the descriptors of `fds`; the files passed are closed here afterwards. */
const spawnSandbox = (o: LaunchOptions, masterFd: number): ChildProcess => {
  const passed: Array<number> = []
  const pass = (path: string) => { const fd = openSync(path, "r"); passed.push(fd); return fd }
  try {
    return spawn(o.file, [...o.args], {
      stdio: ["ignore", "pipe", "pipe", pass(o.helperPath), masterFd, "pipe", pass(o.seccompPath), pass(o.argsPath), "pipe"],
      detached: true, // its own process group: kill(-pid) reaches bwrap even before it has started its child
      env: { PATH: toolDirs.join(":") }
    })
  } finally {
    for (const fd of passed) closeSync(fd)
  }
}

const stream = (proc: ChildProcess, fd: number): Readable =>
  (proc.stdio as ReadonlyArray<Readable | Writable | null | undefined>)[fd] as Readable

const launch = (o: LaunchOptions) => {
  const masterFd = openPty(o.buildUid)
  const tty = new ReadStream(masterFd) // owns the master fd from here on
  let spawned = false
  let proc: ChildProcess
  try {
    proc = spawnSandbox(o, masterFd)
    spawned = true
  } finally {
    if (!spawned) tty.destroy()
  }

  let done: Completion | undefined
  let limit: Completion["limit"]
  let logEnded = false
  const waiters: Array<(c: Completion) => void> = []
  const status: Array<Buffer> = []
  let json = ""
  let bwrapStderr = ""
  let silenceTimer: NodeJS.Timeout | undefined
  let graceTimer: NodeJS.Timeout | undefined

  let exited = false
  const kill = () => {
    if (done !== undefined || exited) return // (its child's pid may already belong to another process)
    const inner = jsonField(json, "child-pid")
    if (inner !== undefined) {
      killQuietly(inner)
      graceTimer ??= timer(outerGraceSeconds, () => killQuietly(-proc.pid!))
    } else if (proc.pid !== undefined) {
      killQuietly(-proc.pid)
    }
  }
  const stopAt = (reason: "timeout" | "silence") => { limit ??= reason; kill() }
  const timeoutTimer = timer(o.timeoutSeconds, () => stopAt("timeout"))
  const armSilence = () => {
    if (done !== undefined) return
    if (silenceTimer !== undefined) clearTimeout(silenceTimer)
    silenceTimer = timer(o.maxSilentSeconds, () => stopAt("silence"))
  }
  const log = (chunk: Uint8Array) => {
    armSilence()
    try { o.onLog(chunk) } catch { /* a failing log consumer must not break the build */ }
  }

  tty.on("data", log)
  tty.on("error", () => { logEnded = true }) // EIO: every slave fd is closed
  tty.on("close", () => { logEnded = true })
  proc.stdout!.on("data", log)
  proc.stderr!.on("data", (chunk: Buffer) => { bwrapStderr += chunk.toString(); log(chunk) })
  stream(proc, fds.status).on("data", (chunk: Buffer) => { status.push(chunk) })
  stream(proc, fds.jsonStatus).on("data", (chunk: Buffer) => { json += chunk.toString() })
  armSilence()

  /** Reads what the builder wrote and libuv has not read yet (the tree is gone: EIO or EAGAIN ends it). */
  const drainPty = () => {
    if (logEnded) return
    tty.pause()
    const buffer = Buffer.alloc(65536)
    for (;;) {
      let n = 0
      try { n = readSync(masterFd, buffer) } catch { break }
      if (n <= 0) break
      log(Buffer.from(buffer.subarray(0, n))) // a copy: the consumer may keep it
    }
  }

  const finish = () => {
    if (done !== undefined) return
    drainPty()
    tty.destroy()
    for (const t of [timeoutTimer, silenceTimer, graceTimer]) if (t !== undefined) clearTimeout(t)
    done = {
      limit, exitCode: jsonField(json, "exit-code"), status: Buffer.concat(status), bwrapStderr,
      bwrapStatus: json, processExit: `code ${proc.exitCode}, signal ${proc.signalCode}`
    }
    for (const wake of waiters.splice(0)) wake(done)
  }
  proc.on("exit", () => { exited = true })
  proc.on("close", finish)
  proc.on("error", (e) => {
    bwrapStderr += `cannot start ${o.file}: ${e.message}\n`
    if (proc.pid === undefined) finish()
  })

  const completion = Effect.callback<Completion>((resume) => {
    if (done !== undefined) resume(Effect.succeed(done))
    else waiters.push((c) => resume(Effect.succeed(c)))
  })
  const terminate = Effect.suspend(() => {
    if (done !== undefined) return Effect.void
    kill()
    return Effect.asVoid(completion)
  })
  return { completion, terminate }
}

/** Starts the sandbox process as a Scope resource (see the module comment). */
export const startBuild = (o: LaunchOptions): Effect.Effect<RunningBuild, unknown, Scope.Scope> =>
  Effect.acquireRelease(Effect.try(() => launch(o)), (running) => running.terminate).pipe(
    Effect.map(({ completion }): RunningBuild => ({ completion }))
  )
