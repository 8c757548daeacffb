/**
 * The sandbox's first stage as one tiny static x86_64 program (no libc; generated here for each
 * build, with the build's paths and ids in it), run as root in place of the chain
 * `unshare --mount --propagation private` → `sh` (mount --bind, mount tmpfs, mount devpts, chmod)
 * → `setpriv` → `setarch -R` that did the same with eight programs started one after another.
 * It makes the same system calls those programs make, in the same order:
 *
 *   1. unshare(CLONE_NEWNS); mount("none", "/", NULL, MS_REC|MS_PRIVATE) — a private mount
 *      namespace: its mounts exist only for this build (nothing to unmount, even if b3 is killed)
 *   2. mount(realStoreDir, <work>/store, MS_BIND) — so the unprivileged stage can reach the inputs
 *      even when the store lies below directories only root may enter
 *   3. (if the host has /dev/shm) a tmpfs of size=50% on the chroot's /dev/shm, and (with a
 *      private devpts) a devpts newinstance,mode=0620 on /dev/pts with ptmx chmod 0666 — as real
 *      root, so that inside they are owned by nobody, like in Nix
 *   4. setgroups(0, NULL), setresgid(gid ×3), setresuid(uid ×3): the build user, no supplementary groups
 *   5. personality(PER_LINUX or PER_LINUX32 | ADDR_NO_RANDOMIZE): address space randomisation off
 *   6. execve(argv[1], &argv[1], envp): bubblewrap, with the rest of the command line
 *
 * A failing step writes [0x01, step, errno] to fd 5 (the status pipe the exec helper reports on
 * too, see exec-helper.ts) and exits 127.
 */
import { helperFds } from "./exec-helper.ts"
import { EAX, EDI, EDX, elfExecutable, emit, type Emitter, ESI, failExit, finish, jnz, mark, movImm, rel32, step, syscall, testEax } from "./x86-elf.ts"

/** Steps reported in the failure record [0x01, step, errno] (numbered after the exec helper's). */
export const rootStageSteps = {
  11: "making the build's mount namespace",
  12: "binding the store into the sandbox's work directory",
  13: "mounting a tmpfs on /dev/shm",
  14: "mounting a private devpts on /dev/pts",
  15: "switching to the build user",
  16: "turning address space randomisation off",
  17: "starting bubblewrap"
} as const

export interface RootStageOptions {
  /** The real store directory, bound at `storeMount`. */
  readonly realStoreDir: string
  readonly storeMount: string
  /** Where the tmpfs goes (the chroot's /dev/shm), if the host has one. */
  readonly devShm?: string | undefined
  /** Where a new devpts instance goes (the chroot's /dev/pts), if the host supports one. */
  readonly devPts?: string | undefined
  readonly uid: number
  readonly gid: number
  readonly personality: "x86_64" | "i686"
}

const SYS = { write: 1, personality: 135, unshare: 272, mount: 165, chmod: 90, setgroups: 116, setresuid: 117, setresgid: 119, execve: 59, exitGroup: 231 }
const CLONE_NEWNS = 0x00020000
const MS_BIND = 0x1000, MS_REC = 0x4000, MS_PRIVATE = 0x40000
const PER_LINUX = 0x0000, PER_LINUX32 = 0x0008, ADDR_NO_RANDOMIZE = 0x0040000

// lea <reg>, [rip + label] for the argument registers
const leaRdi = (e: Emitter, label: string) => rel32(e, [0x48, 0x8d, 0x3d], label)
const leaRsi = (e: Emitter, label: string) => rel32(e, [0x48, 0x8d, 0x35], label)
const leaRdx = (e: Emitter, label: string) => rel32(e, [0x48, 0x8d, 0x15], label)
const leaR8 = (e: Emitter, label: string) => rel32(e, [0x4c, 0x8d, 0x05], label)
const movR10 = (e: Emitter, value: number) => emit(e, 0x41, 0xba, value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff)
const zeroR8 = (e: Emitter) => emit(e, 0x45, 0x31, 0xc0) // xor r8d, r8d

/** The program for one build (see the module comment). */
const program = (o: RootStageOptions): Array<number> => {
  const e: Emitter = { bytes: [], labels: new Map(), fixups: [] }
  const strings: Array<[string, string]> = []
  const str = (value: string) => {
    const label = `s${strings.length}`
    strings.push([label, value])
    return label
  }
  const mount = (source: string, target: string, type: string | undefined, flags: number, data: string | undefined) => {
    movImm(e, EAX, SYS.mount)
    leaRdi(e, str(source))
    leaRsi(e, str(target))
    if (type === undefined) movImm(e, EDX, 0)
    else leaRdx(e, str(type))
    movR10(e, flags)
    if (data === undefined) zeroR8(e)
    else leaR8(e, str(data))
    syscall(e)
    testEax(e); jnz(e, "fail")
  }

  emit(e, 0x49, 0x89, 0xe4) //                       mov r12, rsp        (r12 → argc, argv…, envp…)
  emit(e, 0x48, 0x83, 0xec, 0x40) //                 sub rsp, 64         (scratch for the failure record)

  step(e, 11)
  movImm(e, EAX, SYS.unshare); movImm(e, EDI, CLONE_NEWNS); syscall(e)
  testEax(e); jnz(e, "fail")
  mount("none", "/", undefined, MS_REC | MS_PRIVATE, undefined)

  step(e, 12)
  mount(o.realStoreDir, o.storeMount, undefined, MS_BIND, undefined)
  if (o.devShm !== undefined) {
    step(e, 13)
    mount("none", o.devShm, "tmpfs", 0, "size=50%")
  }
  if (o.devPts !== undefined) {
    step(e, 14)
    mount("none", o.devPts, "devpts", 0, "newinstance,mode=0620")
    movImm(e, EAX, SYS.chmod); leaRdi(e, str(`${o.devPts}/ptmx`)); movImm(e, ESI, 0o666); syscall(e)
    testEax(e); jnz(e, "fail")
  }

  step(e, 15)
  movImm(e, EAX, SYS.setgroups); movImm(e, EDI, 0); movImm(e, ESI, 0); syscall(e)
  testEax(e); jnz(e, "fail")
  movImm(e, EAX, SYS.setresgid); movImm(e, EDI, o.gid); movImm(e, ESI, o.gid); movImm(e, EDX, o.gid); syscall(e)
  testEax(e); jnz(e, "fail")
  movImm(e, EAX, SYS.setresuid); movImm(e, EDI, o.uid); movImm(e, ESI, o.uid); movImm(e, EDX, o.uid); syscall(e)
  testEax(e); jnz(e, "fail")

  step(e, 16) //                                     personality() returns the previous persona (not an error)
  movImm(e, EAX, SYS.personality); movImm(e, EDI, (o.personality === "i686" ? PER_LINUX32 : PER_LINUX) | ADDR_NO_RANDOMIZE); syscall(e)
  emit(e, 0x85, 0xc0) //                             test eax, eax
  rel32(e, [0x0f, 0x88], "fail") //                  js fail  (-errno)

  step(e, 17) //                                     execve(argv[1], &argv[1], envp)
  emit(e, 0x49, 0x8b, 0x7c, 0x24, 0x10) //           mov rdi, [r12+16]   argv[1]
  emit(e, 0x49, 0x8d, 0x74, 0x24, 0x10) //           lea rsi, [r12+16]   &argv[1]
  emit(e, 0x49, 0x8b, 0x04, 0x24) //                 mov rax, [r12]      argc
  emit(e, 0x49, 0x8d, 0x54, 0xc4, 0x10) //           lea rdx, [r12+rax*8+16]  envp
  movImm(e, EAX, SYS.execve); syscall(e)

  failExit(e, helperFds.status) //                        write(status, [1, step, errno], 3); exit(127)

  const encoder = new TextEncoder()
  for (const [label, value] of strings) {
    mark(e, label)
    emit(e, ...encoder.encode(value), 0)
  }
  return finish(e)
}

/** Paths with a NUL cannot be passed to the kernel (and never occur: they are b3's own). */
const checkPath = (path: string) => {
  if (path.includes("\0")) throw new Error(`path contains a NUL byte: ${JSON.stringify(path)}`)
}

/** The first stage of one build as a complete static ELF executable. */
export const rootStageElf = (o: RootStageOptions): Uint8Array => {
  for (const path of [o.realStoreDir, o.storeMount, o.devShm ?? "", o.devPts ?? ""]) checkPath(path)
  return elfExecutable(program(o))
}
