/** Helpers shared by the derivation, narinfo and signature tests that run real Nix. */
import { spawnSync } from "node:child_process"
import { Result } from "effect"
import { nixEnv } from "../support/nix.ts"

/** Nix's environment with floating content-addressed derivations enabled. */
export const nixCaEnv: NodeJS.ProcessEnv = { ...nixEnv, NIX_CONFIG: `${nixEnv.NIX_CONFIG}\nexperimental-features = nix-command ca-derivations` }

/** Runs a Nix command; its stdout, or throws with its stderr. */
export const runNix = (cmd: string, args: ReadonlyArray<string>): string => {
  const r = spawnSync(cmd, args, { env: nixCaEnv, maxBuffer: 1 << 30 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.toString()}`)
  return r.stdout.toString()
}

/** The success of a Result, or a thrown error with the failure's message. */
export const ok = <A, E>(r: Result.Result<A, E>): A => {
  if (Result.isFailure(r)) throw new Error(`expected success, got: ${String((r.failure as { message?: string }).message ?? r.failure)}`)
  return r.success
}
