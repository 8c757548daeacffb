/**
 * Nix's machines syntax (the `builders` setting, /etc/nix/machines): one machine per line (or
 * `;`-separated), `#` comments, fields separated by whitespace, `-` for a default:
 *
 *   URI  SYSTEMS  SSH-KEY  MAX-JOBS  SPEED-FACTOR  SUPPORTED-FEATURES  MANDATORY-FEATURES  HOST-KEY(base64)
 *
 * A URI without a scheme is `ssh://URI`. Systems and features are comma-separated. `@FILE` lines
 * (include a machines file) are expanded by the caller, which reads files; this module is pure.
 */
import { Result } from "effect"
import { InvalidMachines } from "./errors.ts"

export interface Machine {
  readonly uri: string
  readonly systems: ReadonlyArray<string>
  readonly sshKey: string
  readonly maxJobs: number
  readonly speedFactor: number
  readonly supportedFeatures: ReadonlyArray<string>
  readonly mandatoryFeatures: ReadonlyArray<string>
  /** The host's public key, base64 of its `ssh-… AAAA…` line, or "". */
  readonly publicHostKey: string
}

/** The lines of a builders string, comments and blanks removed (`@FILE` lines kept for the caller). */
export const machineLines = (text: string): ReadonlyArray<string> =>
  text.split(/[\n;]/).map((l) => l.replace(/#.*$/, "").trim()).filter((l) => l.length > 0)

const fail = (input: string, reason: string) => Result.fail(new InvalidMachines({ input, reason }))

export const parseMachine = (line: string, thisSystem: string): Result.Result<Machine, InvalidMachines> => {
  const t = line.trim().split(/\s+/)
  const set = (i: number) => t.length > i && t[i] !== "" && t[i] !== "-"
  const int = (i: number, name: string): number | string => {
    if (!set(i)) return 1
    return /^\d+$/.test(t[i]!) ? Number(t[i]) : `${name} '${t[i]}' is not a whole number`
  }
  if (!set(0)) return fail(line, "the store URI is missing")
  const raw = t[0]!
  const uri = raw.includes("://") || raw.includes("/") || ["auto", "daemon", "local"].includes(raw) || /^(auto|daemon|local)\?/.test(raw) || raw.startsWith("?")
    ? raw : `ssh://${raw}`
  const maxJobs = int(3, "max jobs")
  const speedFactor = int(4, "speed factor")
  if (typeof maxJobs === "string") return fail(line, maxJobs)
  if (typeof speedFactor === "string") return fail(line, speedFactor)
  const list = (i: number) => set(i) ? t[i]!.split(",").filter((x) => x.length > 0) : []
  const publicHostKey = set(7) ? t[7]! : ""
  if (publicHostKey !== "" && !/^[A-Za-z0-9+/]+=*$/.test(publicHostKey)) return fail(line, "the host key is not base64")
  return Result.succeed({
    uri, systems: set(1) ? list(1) : [thisSystem], sshKey: set(2) ? t[2]! : "", maxJobs, speedFactor: Math.max(1, speedFactor),
    supportedFeatures: list(5), mandatoryFeatures: list(6), publicHostKey
  })
}

export const parseMachines = (text: string, thisSystem: string): Result.Result<ReadonlyArray<Machine>, InvalidMachines> => {
  const out: Array<Machine> = []
  for (const line of machineLines(text)) {
    if (line.startsWith("@")) return fail(line, "'@FILE' lines must be expanded before parsing")
    const m = parseMachine(line, thisSystem)
    if (Result.isFailure(m)) return Result.fail(m.failure)
    out.push(m.success)
  }
  return Result.succeed(out)
}

/** Whether a machine can take a build for `system` needing `features` (Nix's allSupported and mandatoryMet). */
export const canBuild = (m: Machine, system: string, features: ReadonlyArray<string>): boolean =>
  (system === "builtin" || m.systems.includes(system)) &&
  features.every((f) => m.supportedFeatures.includes(f) || m.mandatoryFeatures.includes(f)) &&
  m.mandatoryFeatures.every((f) => features.includes(f))
