/**
 * Runs real Nix (Debian's nix-bin 2.8) for differential tests. Every call is offline
 * (`substituters = ''`) and uses the nix-command experimental feature.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/**
 * Nix keeps a narinfo cache per binary-cache URL in $XDG_CACHE_HOME/nix (30 days for hits). Test
 * servers listen on ephemeral ports, so a later test on a reused port would read the narinfos
 * (and signatures) of an earlier one: each test process gets a cache directory of its own, under
 * the run's directory that global-setup.ts removes at the end.
 */
const nixCacheHome = mkdtempSync(join(process.env.B3_TEST_NIX_CACHES ?? tmpdir(), "b3-nix-cache-"))

export const nixEnv: NodeJS.ProcessEnv = {
  ...process.env,
  NIX_CONFIG: "experimental-features = nix-command\nsubstituters =\nsandbox = false",
  NIX_REMOTE: "",
  XDG_CACHE_HOME: nixCacheHome
}

/** Runs a Nix tool and returns its stdout (trimmed of the final newline); throws with stderr on failure. */
export const nix = (command: string, args: ReadonlyArray<string>, options: { input?: string | Uint8Array } = {}): string => {
  const result = spawnSync(command, args, { env: nixEnv, input: options.input, maxBuffer: 1 << 30 })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.status}): ${result.stderr?.toString()}`)
  }
  return result.stdout.toString().replace(/\n$/, "")
}

/** Runs a Nix tool and returns its raw stdout bytes. */
export const nixBytes = (command: string, args: ReadonlyArray<string>, options: { input?: string | Uint8Array } = {}): Buffer => {
  const result = spawnSync(command, args, { env: nixEnv, input: options.input, maxBuffer: 1 << 30 })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.status}): ${result.stderr?.toString()}`)
  }
  return result.stdout
}

export const hasNix = (() => {
  try { execFileSync("nix-store", ["--version"], { stdio: "ignore" }); return true } catch { return false }
})()

/** A fresh scratch directory under the OS temp dir; remove it with `removeScratch`. */
export const makeScratch = (prefix = "b3-test-"): string => mkdtempSync(join(tmpdir(), prefix))
export const removeScratch = (dir: string): void => {
  // Nix makes store contents read-only; make them writable again so they can be removed.
  spawnSync("chmod", ["-R", "u+w", dir])
  rmSync(dir, { recursive: true, force: true })
}

/** Nix's environment with its sandbox on (as the daemon tests compare builds). */
export const nixSandboxEnv: NodeJS.ProcessEnv = { ...nixEnv, NIX_CONFIG: "experimental-features = nix-command\nsubstituters =\nsandbox = true" }

export interface NixRun { status: number; stdout: string; stderr: string }

/** `run` (status and output, whatever the exit) and `ok` (stdout, or throw with stderr) of Nix's tools in `env`. */
export const nixRunner = (env: NodeJS.ProcessEnv) => {
  const run = (command: string, args: ReadonlyArray<string>): NixRun => {
    const r = spawnSync(command, args, { env, maxBuffer: 1 << 28 })
    return { status: r.status ?? -1, stdout: r.stdout.toString().replace(/\n$/, ""), stderr: r.stderr.toString() }
  }
  const ok = (command: string, args: ReadonlyArray<string>): string => {
    const r = run(command, args)
    if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${r.status}): ${r.stderr}`)
    return r.stdout
  }
  return { run, ok }
}
