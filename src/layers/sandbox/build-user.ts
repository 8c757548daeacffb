/**
 * The host accounts builds run as. Like Nix, b3 builds as a member of group `nixbld` (nixbld1,
 * nixbld2… in the group's order) with the group's gid when Nix's build users exist; each then has
 * Nix's user-pool lock file, /nix/var/nix/userpool/<uid>, which b3 holds (shared) while building
 * so that Nix neither picks that user nor kills its processes (see user-lock.ts). On a machine
 * without Nix it uses (and, as root, creates) a system user and group `b3bld`. Inside the sandbox
 * the account is always uid 1000 / gid 100.
 */
import { execFile } from "node:child_process"
import { readFile } from "node:fs/promises"
import { Effect } from "effect"
import { BuildUserUnavailable } from "./errors.ts"
import type { BuildUser } from "./spec.ts"

export interface PasswdEntry { readonly name: string; readonly uid: number; readonly gid: number }
export interface GroupEntry { readonly name: string; readonly gid: number; readonly members: ReadonlyArray<string> }

const fields = (text: string, min: number) =>
  text.split("\n").map((line) => line.split(":")).filter((f) => f.length >= min && f[0] !== "" && !f[0]!.startsWith("#"))

const id = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined)

/** Entries of an /etc/passwd file (malformed lines are skipped). */
export const parsePasswd = (text: string): Array<PasswdEntry> =>
  fields(text, 4).flatMap((f) => {
    const uid = id(f[2]), gid = id(f[3])
    return uid === undefined || gid === undefined ? [] : [{ name: f[0]!, uid, gid }]
  })

/** Entries of an /etc/group file (malformed lines are skipped). */
export const parseGroup = (text: string): Array<GroupEntry> =>
  fields(text, 3).flatMap((f) => {
    const gid = id(f[2])
    const members = (f[3] ?? "").split(",").map((m) => m.trim()).filter((m) => m.length > 0)
    return gid === undefined ? [] : [{ name: f[0]!, gid, members }]
  })

/**
 * Where Nix keeps its user-pool locks (settings.nixStateDir + "/userpool"); B3_USER_POOL_DIR names
 * it directly, for a b3 whose NIX_STATE_DIR (passed on to the programs it runs, such as a
 * post-build-hook) is not the one of the Nix installation whose build users it shares.
 */
export const nixUserPoolDir = () => process.env["B3_USER_POOL_DIR"] || `${process.env["NIX_STATE_DIR"] ?? "/nix/var/nix"}/userpool`

/**
 * The build users, in the order to try them: the members of group `nixbld` (with Nix's lock
 * files), else `b3bld`; empty if neither exists. Root is never a build user.
 */
export const buildUserCandidates = (passwd: string, group: string): Array<BuildUser> => {
  const users = parsePasswd(passwd), groups = parseGroup(group)
  const nixbld = groups.find((g) => g.name === "nixbld")
  if (nixbld !== undefined) {
    const members = nixbld.members.flatMap((name) => users.filter((u) => u.name === name && u.uid !== 0))
    if (members.length > 0) {
      return members.map((u) => ({ name: u.name, uid: u.uid, gid: nixbld.gid, lockFile: `${nixUserPoolDir()}/${u.uid}` }))
    }
  }
  const user = users.find((u) => u.name === "b3bld" && u.uid !== 0)
  const grp = groups.find((g) => g.name === "b3bld")
  return user !== undefined && grp !== undefined ? [{ name: user.name, uid: user.uid, gid: grp.gid }] : []
}

const readAccounts = Effect.tryPromise({
  try: async () => [await readFile("/etc/passwd", "utf8"), await readFile("/etc/group", "utf8")] as const,
  catch: (e) => new BuildUserUnavailable({ reason: `cannot read /etc/passwd or /etc/group: ${String(e)}` })
})

/** The build users that exist; never creates one. */
export const findBuildUsers: Effect.Effect<Array<BuildUser>, BuildUserUnavailable> = readAccounts.pipe(
  Effect.map(([passwd, group]) => buildUserCandidates(passwd, group))
)

const run = (file: string, args: ReadonlyArray<string>) =>
  Effect.callback<void, BuildUserUnavailable>((resume) => {
    execFile(file, args, (error, _stdout, stderr) => {
      // "already exists" (exit 9) is fine: another process created it first.
      const code = (error as { code?: unknown } | null)?.code
      resume(error === null || code === 9
        ? Effect.void
        : Effect.fail(new BuildUserUnavailable({ reason: `${file} ${args.join(" ")} failed: ${stderr.trim() || String(error)}` })))
    })
  })

/**
 * The build users (see buildUserCandidates), creating the system group and user `b3bld` (no
 * home, no login shell) when there are none. Creating needs root: otherwise BuildUserUnavailable.
 */
export const ensureBuildUsers = (): Effect.Effect<Array<BuildUser>, BuildUserUnavailable> =>
  Effect.gen(function*() {
    const existing = yield* findBuildUsers
    if (existing.length > 0) return existing
    if (process.getuid?.() !== 0) {
      return yield* new BuildUserUnavailable({
        reason: "neither Nix's build users (group nixbld) nor b3bld exists, and creating b3bld needs root " +
          "(run once as root, or: groupadd --system b3bld && useradd --system --gid b3bld --no-create-home b3bld)"
      })
    }
    yield* run("groupadd", ["--system", "b3bld"])
    yield* run("useradd", [
      "--system", "--gid", "b3bld", "--no-create-home", "--home-dir", "/var/empty",
      "--shell", "/usr/sbin/nologin", "--comment", "b3 build user", "b3bld"
    ])
    const created = yield* findBuildUsers
    if (created.length === 0) {
      return yield* new BuildUserUnavailable({ reason: "created b3bld, but it is not in /etc/passwd and /etc/group" })
    }
    return created
  })

/** The first build user (nixbld1 on a machine with Nix), created if need be (see ensureBuildUsers). */
export const ensureBuildUser = (): Effect.Effect<BuildUser, BuildUserUnavailable> =>
  Effect.map(ensureBuildUsers(), (users) => users[0]!)
