/**
 * Holding a build user for the duration of a build, compatibly with Nix.
 *
 * Nix picks a build user by taking an exclusive, non-blocking flock on
 * /nix/var/nix/userpool/<uid>, and then kills every process of that uid (before and after its
 * build). b3 therefore holds a *shared* flock on the same file while it builds as that user: Nix
 * cannot take the user (and so never kills b3's builders), while any number of b3 builds may share
 * it — they are isolated from each other by their namespaces. If Nix holds the lock, b3 tries the
 * next user; if Nix holds all of them, b3 waits for the first.
 *
 * Node has no flock(2), so the lock is held by a small child: `flock --shared FILE sh -c
 * 'echo locked; read x'`. It says "locked" once the lock is held and keeps it until its stdin is
 * closed — by the Scope's release, or by the kernel when b3 dies.
 */
import { spawn } from "node:child_process"
import { closeSync, mkdirSync, openSync } from "node:fs"
import { dirname } from "node:path"
import { Effect } from "effect"
import type { Scope } from "effect"
import { SandboxSetupFailed } from "./errors.ts"
import { toolDirs } from "./host.ts"
import type { BuildUser } from "./spec.ts"

/** flock's exit code when a non-blocking lock is held by someone else. */
const conflict = 75

interface Holder {
  readonly release: Effect.Effect<void>
}

/** Starts a lock holder; succeeds with it once locked, or with undefined if the lock is taken (non-blocking only). */
const hold = (flock: string, sh: string, file: string, wait: boolean) =>
  Effect.try({
    try: () => {
      mkdirSync(dirname(file), { recursive: true })
      closeSync(openSync(file, "a", 0o600)) // as Nix creates it
    },
    catch: (e) => `cannot create ${file}: ${e instanceof Error ? e.message : String(e)}`
  }).pipe(Effect.andThen(Effect.callback<Holder | undefined, string>((resume) => {
    const child = spawn(flock, [
      "--shared", ...(wait ? [] : ["--nonblock", "--conflict-exit-code", String(conflict)]), "--close", file,
      sh, "-c", "echo locked; read x"
    ], { stdio: ["pipe", "pipe", "pipe"], env: { PATH: toolDirs.join(":") } })
    let output = "", errors = "", locked = false
    let exited = false
    const exit = new Promise<void>((done) => child.on("close", () => { exited = true; done() }))
    const release = Effect.promise(() => { if (!exited) child.stdin.end(); return exit })
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      if (!locked && output.includes("locked\n")) { locked = true; resume(Effect.succeed({ release })) }
    })
    child.stderr.on("data", (chunk: Buffer) => { errors += chunk.toString() })
    child.on("error", (e) => { if (!locked) resume(Effect.fail(`cannot run ${flock}: ${e.message}`)) })
    child.on("close", (code) => {
      if (locked) return
      if (code === conflict && !wait) resume(Effect.succeed(undefined))
      else resume(Effect.fail(`locking ${file} failed (flock exit ${code}): ${errors.trim()}`))
    })
    return Effect.sync(() => { if (!exited) child.kill("SIGKILL") })
  })))

/**
 * The first of `users` that Nix is not using, held until the Scope closes. Users without a
 * lock file (b3's own) are taken as they are.
 */
export const lockBuildUser = (
  users: ReadonlyArray<BuildUser>,
  tools: { readonly flock: string; readonly sh: string },
  drvName: string
): Effect.Effect<BuildUser, SandboxSetupFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const acquire = (user: BuildUser, wait: boolean) =>
      Effect.acquireRelease(
        hold(tools.flock, tools.sh, user.lockFile!, wait),
        (holder) => holder?.release ?? Effect.void
      )
    for (const user of users) {
      if (user.lockFile === undefined) return user
      if ((yield* acquire(user, false)) !== undefined) return user
    }
    const first = users[0]
    if (first === undefined) return yield* Effect.fail("no build users")
    yield* acquire(first, true)
    return first
  }).pipe(Effect.mapError((reason) => new SandboxSetupFailed({ drvName, reason: `build user: ${reason}`, logTail: "" })))
