/**
 * The two host directories of a build, as Scope resources that are removed when the scope closes:
 * the work directory (chroot tree, mount points, helper files) and the build directory
 * (`nix-build-<name>.drv-N` in the temp dir, like Nix's), which the builder sees as /build.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Result } from "effect"
import type { Scope } from "effect"
import { SandboxSetupFailed } from "./errors.ts"

/** Paths under which something is mounted, seen from this process. */
const mountPointsUnder = (dir: string): Array<string> => {
  try {
    return readFileSync("/proc/self/mountinfo", "utf8").split("\n")
      .map((line) => line.split(" ")[4] ?? "")
      .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(dir + "/"))
  } catch {
    return []
  }
}

/** Makes every directory under `root` writable and enterable, so that it can be removed. */
const makeRemovable = (root: string) => {
  const pending = [root]
  while (pending.length > 0) {
    const path = pending.pop()!
    try {
      if (!lstatSync(path).isDirectory()) continue
      chmodSync(path, 0o700)
      for (const name of readdirSync(path)) pending.push(join(path, name))
    } catch {
      // vanished, or not ours to change: rmSync reports what really matters
    }
  }
}

/**
 * Removes a directory tree — unless something is mounted inside it (then removing could reach
 * into the mounted file system; the mounts of a build live in its own namespace, so this is only
 * a guard).
 */
export const removeTree = (dir: string): Effect.Effect<void> =>
  Effect.sync(() => {
    if (mountPointsUnder(dir).length > 0) return
    makeRemovable(dir)
    rmSync(dir, { recursive: true, force: true })
  }).pipe(Effect.ignore)

/** A fresh root-owned 0755 work directory under the temp dir. */
export const workDirectory = (drvName: string): Effect.Effect<string, SandboxSetupFailed, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const dir = mkdtempSync(join(tmpdir(), "b3-sandbox-"))
        chmodSync(dir, 0o755)
        return dir
      },
      catch: setupError(drvName, "creating the work directory")
    }),
    removeTree
  )

/**
 * Nix's build directory name: <temp dir>/nix-build-<name>.drv-<n>, the first n that is free
 * (mkdir decides, so concurrent builds of equally named derivations get different n).
 */
const createBuildDir = (drvName: string): Result.Result<string, unknown> => {
  for (let n = 0; n < 100000; n++) {
    const dir = join(tmpdir(), `nix-build-${drvName}.drv-${n}`)
    try {
      mkdirSync(dir)
      return Result.succeed(dir)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") return Result.fail(e)
    }
  }
  return Result.fail(new Error(`no free name nix-build-${drvName}.drv-<n> in ${tmpdir()}`))
}

const setupError = (drvName: string, what: string) => (e: unknown) =>
  new SandboxSetupFailed({ drvName, reason: `${what}: ${e instanceof Error ? e.message : String(e)}`, logTail: "" })

/** The build directory: mode 0700, owned by the build user. */
export const buildDirectory = (drvName: string, uid: number, gid: number): Effect.Effect<string, SandboxSetupFailed, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => Effect.fromResult(createBuildDir(drvName))).pipe(
      Effect.flatMap((dir) => Effect.try(() => {
        chmodSync(dir, 0o700)
        chownSync(dir, uid, gid)
        return dir
      }).pipe(Effect.onError(() => removeTree(dir)))),
      Effect.mapError(setupError(drvName, "creating the build directory"))
    ),
    removeTree
  )
