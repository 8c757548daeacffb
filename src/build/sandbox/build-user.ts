/**
 * The host account builds run as. Like Nix, b3 builds as `nixbld1` with the gid of group `nixbld`
 * when Nix's build users exist; on a machine without Nix it uses (and, as root, creates) a system
 * user and group `b3bld`. Inside the sandbox the account is always uid 1000 / gid 100.
 */
import { execFile } from "node:child_process"
import { readFile } from "node:fs/promises"
import { Effect } from "effect"
import { BuildUserUnavailable } from "./errors.ts"
import type { BuildUser } from "./spec.ts"

export interface PasswdEntry { readonly name: string; readonly uid: number; readonly gid: number }
export interface GroupEntry { readonly name: string; readonly gid: number }

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
    return gid === undefined ? [] : [{ name: f[0]!, gid }]
  })

/** Nix's build users first, then b3's own. */
export const buildUserCandidates = [
  { user: "nixbld1", group: "nixbld" },
  { user: "b3bld", group: "b3bld" }
] as const

/** Picks the build user from passwd and group contents, if one exists. */
export const chooseBuildUser = (passwd: string, group: string): BuildUser | undefined => {
  const users = parsePasswd(passwd), groups = parseGroup(group)
  for (const candidate of buildUserCandidates) {
    const user = users.find((u) => u.name === candidate.user)
    const grp = groups.find((g) => g.name === candidate.group)
    if (user !== undefined && grp !== undefined && user.uid !== 0) {
      return { name: user.name, uid: user.uid, gid: grp.gid }
    }
  }
  return undefined
}

const readAccounts = Effect.tryPromise({
  try: async () => [await readFile("/etc/passwd", "utf8"), await readFile("/etc/group", "utf8")] as const,
  catch: (e) => new BuildUserUnavailable({ reason: `cannot read /etc/passwd or /etc/group: ${String(e)}` })
})

/** The build user if one exists; never creates one. */
export const findBuildUser: Effect.Effect<BuildUser | undefined, BuildUserUnavailable> = readAccounts.pipe(
  Effect.map(([passwd, group]) => chooseBuildUser(passwd, group))
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
 * The build user, created (system group and user `b3bld`, no home, no login shell) when neither
 * Nix's nor b3's exists. Creating needs root: otherwise fails with BuildUserUnavailable.
 */
export const ensureBuildUser = (): Effect.Effect<BuildUser, BuildUserUnavailable> =>
  Effect.gen(function*() {
    const existing = yield* findBuildUser
    if (existing !== undefined) return existing
    if (process.getuid?.() !== 0) {
      return yield* new BuildUserUnavailable({
        reason: "neither nixbld1/nixbld nor b3bld/b3bld exists, and creating b3bld needs root " +
          "(run once as root, or: groupadd --system b3bld && useradd --system --gid b3bld --no-create-home b3bld)"
      })
    }
    yield* run("groupadd", ["--system", "b3bld"])
    yield* run("useradd", [
      "--system", "--gid", "b3bld", "--no-create-home", "--home-dir", "/var/empty",
      "--shell", "/usr/sbin/nologin", "--comment", "b3 build user", "b3bld"
    ])
    const created = yield* findBuildUser
    if (created === undefined) {
      return yield* new BuildUserUnavailable({ reason: "created b3bld, but it is not in /etc/passwd and /etc/group" })
    }
    return created
  })
