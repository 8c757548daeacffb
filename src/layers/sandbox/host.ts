/**
 * What the host must offer for sandboxed builds: Linux on x86_64, root, user namespaces, and the
 * programs the runner starts (bubblewrap; util-linux flock and sh, which hold the build user's lock).
 * The rest of the sandbox's first stage is b3's own (root-stage.ts).
 */
import { accessSync, constants, readFileSync } from "node:fs"
import { Effect } from "effect"
import { SandboxUnavailable } from "./errors.ts"

export interface HostTools {
  readonly bwrap: string
  readonly sh: string
  readonly flock: string
}

/** Directories searched for the tools (the caller's PATH is not trusted for this). */
export const toolDirs = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

const findTool = (name: string): string | undefined =>
  toolDirs.map((dir) => `${dir}/${name}`).find((path) => {
    try { accessSync(path, constants.X_OK); return true } catch { return false }
  })

const hint = {
  bwrap: "install bubblewrap (Debian: apt-get install bubblewrap)",
  flock: "install util-linux", sh: "a POSIX shell is needed"
} as const

const userNamespacesEnabled = (): boolean => {
  try { return Number(readFileSync("/proc/sys/user/max_user_namespaces", "utf8").trim()) > 0 } catch { return false }
}

/** Checks the host and finds the tools, or says precisely what is missing. */
export const checkHost: Effect.Effect<HostTools, SandboxUnavailable> = Effect.suspend(() => {
  if (checked !== undefined) return Effect.succeed(checked)
  const unavailable = (reason: string) => Effect.fail(new SandboxUnavailable({ reason }))
  if (process.platform !== "linux") return unavailable(`sandboxed builds need Linux (this is ${process.platform})`)
  if (process.arch !== "x64") return unavailable(`sandboxed builds are implemented for x86_64 hosts only (this is ${process.arch})`)
  if (process.getuid?.() !== 0) return unavailable("sandboxed builds need root (to mount, and to switch to the build user)")
  if (!userNamespacesEnabled()) {
    return unavailable("user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0 or missing)")
  }
  const found: Record<string, string> = {}
  for (const name of ["bwrap", "flock", "sh"] as const) {
    const path = findTool(name)
    if (path === undefined) return unavailable(`'${name}' not found in ${toolDirs.join(":")}: ${hint[name]}`)
    found[name] = path
  }
  checked = { bwrap: found["bwrap"]!, sh: found["sh"]!, flock: found["flock"]! }
  return Effect.succeed(checked)
})

/** A host that passed the check stays fit for the life of the process (tools are looked up once). */
let checked: HostTools | undefined
