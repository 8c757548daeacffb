/**
 * The directory tree that becomes the sandbox's "/" — what Nix 2.8 builds in `<drv>.chroot`:
 *
 *   /                 0750 root:<build group>        /tmp   1777 root:root
 *   /etc              passwd, group, hosts (FOD: nsswitch.conf + mount points for the host's
 *                     resolv.conf, services, hosts)
 *   <storeDir>        1775 root:<build group>, holding mount points for the inputs (directories) or
 *                     links/copies of them (other inputs); the builder creates its outputs here
 *   /dev              mount points for full [kvm] null random tty urandom zero, shm/ and pts/
 *                     (a tmpfs and a new devpts, mounted by the runner), fd/stdin/stdout/stderr links,
 *                     and ptmx → pts/ptmx when the host supports a private devpts
 *   /proc, /build     mount points
 *
 * `skeleton` describes it (pure), `createSkeleton` makes it (as root).
 */
import { chmodSync, chownSync, copyFileSync, linkSync, lchownSync, lstatSync, lutimesSync, mkdirSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from "node:fs"

/** The identity inside the sandbox (Nix's sandboxUid / sandboxGid). */
export const sandboxUid = 1000
export const sandboxGid = 100

/** Device nodes bound from the host, in Nix's order (kvm only when the host has it). */
export const sandboxDevices = (hasKvm: boolean): Array<string> =>
  ["/dev/full", ...(hasKvm ? ["/dev/kvm"] : []), "/dev/null", "/dev/random", "/dev/tty", "/dev/urandom", "/dev/zero"]

/** Host files a fixed-output derivation sees (each only if the host has it). */
export const fixedOutputHostFiles = ["/etc/resolv.conf", "/etc/services", "/etc/hosts"]

export const etcPasswd = (buildDir: string) =>
  `root:x:0:0:Nix build user:${buildDir}:/noshell\n` +
  `nixbld:x:${sandboxUid}:${sandboxGid}:Nix build user:${buildDir}:/noshell\n` +
  "nobody:x:65534:65534:Nobody:/:/noshell\n"
export const etcGroup = `root:x:0:\nnixbld:!:${sandboxGid}:\nnogroup:x:65534:\n`
export const etcHosts = "127.0.0.1 localhost\n::1 localhost\n"
export const etcNsswitch = "hosts: files dns\nservices: files\n"

export type SkeletonEntry =
  /** A directory; `buildGroup` makes it root:<build group> instead of root:root. */
  | { readonly kind: "dir"; readonly path: string; readonly mode: number; readonly buildGroup?: boolean }
  | { readonly kind: "file"; readonly path: string; readonly mode: number; readonly contents: string }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string }
  /** A non-directory input: hard link to `source`, or a copy when linking is impossible. */
  | { readonly kind: "link"; readonly path: string; readonly source: string }

export interface SkeletonOptions {
  readonly storeDir: string
  readonly buildDir: string
  readonly fixedOutput: boolean
  /** Input store paths (logical), whether each is a directory, and where it physically is. */
  readonly inputs: ReadonlyArray<{ readonly path: string; readonly isDirectory: boolean; readonly realPath: string }>
  readonly devices: ReadonlyArray<string>
  /** fixedOutputHostFiles that exist on the host. */
  readonly hostFiles: ReadonlyArray<string>
  readonly devPts: boolean
  /** Host paths to show (sandbox-paths), resolved: mount points for directories and files, links for symlinks. */
  readonly hostPaths?: ReadonlyArray<HostPath> | undefined
}

/** One `sandbox-paths` entry as it is on the host. */
export interface HostPath {
  readonly target: string
  readonly source: string
  readonly kind: "dir" | "file" | "symlink"
  /** For a symlink: its target, recreated as is. */
  readonly link?: string | undefined
}

/** Every proper ancestor of an absolute path, outermost first ("/a/b/c" → "/a", "/a/b"). */
const ancestors = (path: string): Array<string> => {
  const parts = path.split("/").filter((p) => p.length > 0)
  return parts.slice(0, -1).map((_, i) => "/" + parts.slice(0, i + 1).join("/"))
}

export const skeleton = (o: SkeletonOptions): Array<SkeletonEntry> => {
  const dir = (path: string, mode = 0o755): SkeletonEntry => ({ kind: "dir", path, mode })
  const mountPoint = (path: string): SkeletonEntry => ({ kind: "file", path, mode: 0o644, contents: "" })
  // Each path once (a store dir under /tmp shares /tmp with the chroot's own): the first entry wins.
  const seen = new Set<string>()
  const entries: Array<SkeletonEntry> = [
    { kind: "dir", path: "/", mode: 0o750, buildGroup: true },
    dir("/tmp", 0o1777),
    dir("/etc"),
    { kind: "file", path: "/etc/group", mode: 0o644, contents: etcGroup },
    { kind: "file", path: "/etc/passwd", mode: 0o644, contents: etcPasswd(o.buildDir) },
    ...(o.fixedOutput
      ? [{ kind: "file", path: "/etc/nsswitch.conf", mode: 0o644, contents: etcNsswitch } as const, ...o.hostFiles.map(mountPoint)]
      : [{ kind: "file", path: "/etc/hosts", mode: 0o644, contents: etcHosts } as const]),
    ...ancestors(o.storeDir).map((p) => dir(p)),
    { kind: "dir", path: o.storeDir, mode: 0o1775, buildGroup: true },
    ...o.inputs.map((i): SkeletonEntry => i.isDirectory ? dir(i.path) : { kind: "link", path: i.path, source: i.realPath }),
    dir(o.buildDir),
    dir("/proc"),
    dir("/dev"),
    dir("/dev/shm"),
    dir("/dev/pts"),
    ...o.devices.map(mountPoint),
    { kind: "symlink", path: "/dev/fd", target: "/proc/self/fd" },
    { kind: "symlink", path: "/dev/stdin", target: "/proc/self/fd/0" },
    { kind: "symlink", path: "/dev/stdout", target: "/proc/self/fd/1" },
    { kind: "symlink", path: "/dev/stderr", target: "/proc/self/fd/2" },
    ...(o.devPts ? [{ kind: "symlink", path: "/dev/ptmx", target: "/dev/pts/ptmx" } as const] : []),
    ...hostPathEntries(o.hostPaths ?? [], ["/", "/tmp", "/etc", "/etc/group", "/etc/passwd", "/etc/hosts", "/etc/nsswitch.conf", "/proc", "/dev", o.buildDir, o.storeDir, ...ancestors(o.storeDir)])
  ]
  return entries.filter((e) => seen.has(e.path) ? false : (seen.add(e.path), true))
}

/** Skeleton entries for host paths: their ancestors as directories, then a mount point or link each; paths the chroot already has are left alone. */
const hostPathEntries = (paths: ReadonlyArray<HostPath>, taken: ReadonlyArray<string>): Array<SkeletonEntry> => {
  const seen = new Set(taken)
  const out: Array<SkeletonEntry> = []
  for (const p of paths) {
    if (seen.has(p.target) || [...seen].some((t) => t !== "/" && p.target.startsWith(t + "/") && !ancestors(p.target).includes(t))) continue
    for (const a of ancestors(p.target)) {
      if (!seen.has(a)) { seen.add(a); out.push({ kind: "dir", path: a, mode: 0o755 }) }
    }
    seen.add(p.target)
    out.push(p.kind === "dir" ? { kind: "dir", path: p.target, mode: 0o755 }
      : p.kind === "file" ? { kind: "file", path: p.target, mode: 0o644, contents: "" }
      : { kind: "symlink", path: p.target, target: p.link! })
  }
  return out
}

/** Hard-links a non-directory store path, or copies it (same mode, mtime, root owner) across file systems. */
const linkOrCopy = (source: string, target: string) => {
  try {
    linkSync(source, target)
    return
  } catch {
    // EXDEV (another file system) or EPERM (protected hard links): copy instead; a copy that
    // fails too reports the real problem.
  }
  const st = lstatSync(source)
  if (st.isSymbolicLink()) {
    symlinkSync(readlinkSync(source), target)
    lchownSync(target, 0, 0)
    lutimesSync(target, st.atime, st.mtime)
  } else {
    copyFileSync(source, target)
    chownSync(target, 0, 0)
    chmodSync(target, st.mode & 0o7777)
    utimesSync(target, st.atime, st.mtime)
  }
}

/**
 * Creates the tree under `rootDir` (which must not exist yet), as root. Synchronous; call it in
 * Effect.try. Modes are set explicitly, so the process umask does not matter.
 */
export const createSkeleton = (rootDir: string, entries: ReadonlyArray<SkeletonEntry>, buildGid: number): void => {
  for (const entry of entries) {
    const path = entry.path === "/" ? rootDir : rootDir + entry.path
    switch (entry.kind) {
      case "dir":
        mkdirSync(path)
        chmodSync(path, entry.mode)
        if (entry.buildGroup === true) chownSync(path, 0, buildGid)
        break
      case "file":
        writeFileSync(path, entry.contents, { mode: entry.mode })
        chmodSync(path, entry.mode)
        break
      case "symlink":
        symlinkSync(entry.target, path)
        break
      case "link":
        linkOrCopy(entry.source, path)
        break
    }
  }
}
