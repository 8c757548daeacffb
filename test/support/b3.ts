/** Runs the b3 CLI as a user would (bin/b3), for end-to-end and differential tests. */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

export const b3Bin = fileURLToPath(new URL("../../bin/b3", import.meta.url))

export interface B3Result {
  readonly status: number
  readonly stdout: string
  readonly stderr: string
}

export const runB3 = (args: ReadonlyArray<string>, options: { input?: string | Uint8Array; env?: NodeJS.ProcessEnv } = {}): B3Result => {
  const result = spawnSync(b3Bin, args, { input: options.input, env: options.env ?? process.env, maxBuffer: 1 << 30 })
  return { status: result.status ?? -1, stdout: result.stdout.toString(), stderr: result.stderr.toString() }
}

/** Runs b3 and returns stdout without its final newline; throws with stderr if it fails. */
export const b3 = (args: ReadonlyArray<string>, options: { input?: string | Uint8Array } = {}): string => {
  const result = runB3(args, options)
  if (result.status !== 0) throw new Error(`b3 ${args.join(" ")} failed (${result.status}): ${result.stderr}`)
  return result.stdout.replace(/\n$/, "")
}
