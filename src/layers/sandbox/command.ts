/**
 * The command line that starts a build (pure). Two stages:
 *
 * 1. As root, the root stage (root-stage.ts, a tiny program made for each build) makes a private
 *    mount namespace, binds the real store directory at <work>/store (so the unprivileged stage can
 *    reach inputs even when the store lies below directories only root may enter), mounts a tmpfs
 *    on the chroot's /dev/shm and a new devpts instance on /dev/pts — as real root, so that inside
 *    they are owned by nobody like in Nix — drops to the build user (no supplementary groups),
 *    turns address space randomisation off (and sets the 32-bit personality for i686 builds) and
 *    starts bubblewrap. These mounts exist only in that namespace: nothing to unmount later, even
 *    if b3 is killed.
 * 2. bubblewrap creates the user/mount/pid/ipc/uts(/net) namespaces, maps uid 1000/gid 100 to the
 *    build user, binds the chroot, the build directory, the inputs and the devices, loads the
 *    seccomp filter and runs the exec helper (fd 3), which starts the builder.
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

export interface BwrapOptions {
  readonly rootDir: string
  /** The chroot's store directory, bound over the store dir in the tree. */
  readonly chrootStore: string
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
  "--bind", o.chrootStore, o.storeDir,
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
  /** The root stage program (written for this build, see root-stage.ts). */
  readonly rootStage: string
  readonly builder: string
  readonly args: ReadonlyArray<string>
}

/** The program and arguments to spawn (fds as in `fds`, bwrap's options on fd 7). */
export const sandboxCommand = (tools: HostTools, o: CommandOptions): { file: string; args: Array<string> } => ({
  file: o.rootStage,
  args: [tools.bwrap, "--args", String(fds.args), "--", `/proc/self/fd/${fds.helper}`, o.builder, baseName(o.builder), ...o.args]
})
