/**
 * The command line that starts a build (pure). Two stages:
 *
 * 1. As root, in a private mount namespace of its own (`unshare --mount`), a short sh script
 *    binds the real store directory at <work>/store (so the unprivileged stage can reach inputs even
 *    when the store lies below directories only root may enter), mounts a tmpfs on the chroot's
 *    /dev/shm and a new devpts instance on /dev/pts — as real root, so that inside they are owned
 *    by nobody like in Nix. These mounts exist only in that namespace: nothing to unmount later,
 *    even if b3 is killed.
 * 2. `setpriv` drops to the build user (no supplementary groups), `setarch -R` turns address space
 *    randomisation off (and sets the 32-bit personality for i686 builds), and bubblewrap creates
 *    the user/mount/pid/ipc/uts(/net) namespaces, maps uid 1000/gid 100 to the build user, binds
 *    the chroot, the build directory, the inputs and the devices, loads the seccomp filter and
 *    runs the exec helper (fd 3), which starts the builder.
 */
import * as ByteString from "../../core/byte-string.ts"
import { sandboxBuildDir } from "./environment.ts"
import { sandboxGid, sandboxUid } from "./chroot.ts"
import { helperFds } from "./exec-helper.ts"
import type { HostTools } from "./host.ts"

/** Descriptor numbers in the spawned process (the helper's own are fixed in exec-helper.ts). */
export const fds = {
  helper: helperFds.self, ptyMaster: helperFds.ptyMaster, status: helperFds.status,
  seccomp: 6, args: 7, jsonStatus: 8
} as const

/** Stage 1, run by sh as root: $1 = work dir, $2 = real store dir, $3 = "1" to mount /dev/shm, $4 = "1" for devpts. */
export const rootStageScript = [
  "set -e",
  "work=$1; store=$2; shm=$3; pts=$4; shift 4",
  "mount --bind \"$store\" \"$work/store\"",
  "if [ \"$shm\" = 1 ]; then mount -t tmpfs -o size=50% none \"$work/root/dev/shm\"; fi",
  "if [ \"$pts\" = 1 ]; then",
  "  mount -t devpts -o newinstance,mode=0620 none \"$work/root/dev/pts\"",
  "  chmod 0666 \"$work/root/dev/pts/ptmx\"",
  "fi",
  "exec \"$@\""
].join("\n")

export interface BwrapOptions {
  readonly rootDir: string
  readonly storeDir: string
  readonly hostBuildDir: string
  /** Where stage 1 binds the real store directory. */
  readonly storeMount: string
  /** Logical paths of the directory inputs (non-directories are linked into the chroot instead). */
  readonly directoryInputs: ReadonlyArray<string>
  readonly devices: ReadonlyArray<string>
  readonly fixedOutput: boolean
  /** fixedOutputHostFiles that exist on the host (bound read-only for fixed-output builds). */
  readonly hostFiles: ReadonlyArray<string>
  readonly env: ReadonlyArray<readonly [string, string]>
  /** Host paths bound read-only (sandbox-paths): [source, target]. */
  readonly hostBinds?: ReadonlyArray<readonly [string, string]> | undefined
}

const baseName = (path: string) => path.slice(path.lastIndexOf("/") + 1)

/** bubblewrap's options (passed NUL-separated through `--args`), in the order they take effect. */
export const bwrapArguments = (o: BwrapOptions): Array<string> => [
  "--unshare-user", "--uid", String(sandboxUid), "--gid", String(sandboxGid),
  "--unshare-ipc", "--unshare-pid", ...(o.fixedOutput ? [] : ["--unshare-net"]), "--unshare-uts",
  "--hostname", "localhost",
  // Keeps the capability bounding set full (Nix's builder has it full); the exec helper drops the
  // effective, permitted, inheritable and ambient sets before the builder starts.
  "--cap-add", "ALL",
  "--as-pid-1", "--die-with-parent", "--new-session",
  // --dev-bind: a plain --bind would remount the chroot (and the devpts in it) nodev.
  "--dev-bind", o.rootDir, "/",
  "--bind", o.hostBuildDir, sandboxBuildDir,
  // The store directory is a mount of its own in Nix's sandbox too (bound onto itself there).
  "--bind", o.rootDir + o.storeDir, o.storeDir,
  ...o.directoryInputs.flatMap((path) => ["--ro-bind", `${o.storeMount}/${baseName(path)}`, path]),
  ...o.devices.flatMap((dev) => ["--dev-bind", dev, dev]),
  "--proc", "/proc",
  ...(o.fixedOutput ? o.hostFiles.flatMap((file) => ["--ro-bind", file, file]) : []),
  ...(o.hostBinds ?? []).flatMap(([source, target]) => ["--ro-bind", source, target]),
  "--chdir", sandboxBuildDir,
  "--clearenv",
  ...o.env.flatMap(([name, value]) => ["--setenv", name, value]),
  "--seccomp", String(fds.seccomp),
  "--json-status-fd", String(fds.jsonStatus)
]

/** `bwrap --args` format: every argument followed by a NUL. */
export const encodeArgs = (args: ReadonlyArray<string>): Uint8Array =>
  ByteString.encode(args.map((a) => a + "\0").join(""))

export interface CommandOptions {
  readonly workDir: string
  readonly realStoreDir: string
  readonly devShm: boolean
  readonly devPts: boolean
  readonly uid: number
  readonly gid: number
  /** `setarch` architecture: "i686" for i686-linux builds (32-bit personality), else "x86_64". */
  readonly personality: "x86_64" | "i686"
  readonly builder: string
  readonly args: ReadonlyArray<string>
}

/** The program and arguments to spawn (fds as in `fds`, bwrap's options on fd 7). */
export const sandboxCommand = (tools: HostTools, o: CommandOptions): { file: string; args: Array<string> } => ({
  file: tools.unshare,
  args: [
    "--mount", "--propagation", "private", "--",
    tools.sh, "-c", rootStageScript, "b3-sandbox", o.workDir, o.realStoreDir, o.devShm ? "1" : "0", o.devPts ? "1" : "0",
    tools.setpriv, `--reuid=${o.uid}`, `--regid=${o.gid}`, "--clear-groups",
    tools.setarch, o.personality, "-R",
    tools.bwrap, "--args", String(fds.args), "--",
    `/proc/self/fd/${fds.helper}`, o.builder, baseName(o.builder), ...o.args
  ]
})
