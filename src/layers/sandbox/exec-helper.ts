/**
 * The last step inside the sandbox, between bubblewrap and the builder: a tiny static x86_64 ELF
 * program (no libc; a few hundred bytes generated here) that makes the builder's process exactly
 * what Nix 2.8's `runChild()` leaves behind, which bubblewrap 0.8 alone cannot:
 *
 *   1. drops every capability except the bounding set (bwrap runs it with --cap-add ALL, because
 *      that is the only way to keep the bounding set full, as Nix's builder has it): clears the
 *      ambient set and capset()s effective, permitted and inheritable to zero; then umask(022) and
 *      setrlimit(RLIMIT_CORE, {0, RLIM_INFINITY}) (no core dumps; ignored if it fails, as in Nix)
 *   2. stdin = /dev/null opened O_RDWR (Nix opens it read-write; a spawned child gets read-only)
 *   3. stdout + stderr = the slave side of the pseudo-terminal whose master is fd 4, in raw mode
 *      (Nix 2.8 logs through a pty: `[ -t 1 ]` is true in a Nix build). The helper unlocks the pty
 *      (TIOCSPTLCK), opens the slave through the master (TIOCGPTPEER: the host's /dev/pts is not
 *      mounted in the sandbox) and applies cfmakeraw() with TCGETS/TCSETS.
 *   4. every other descriptor close-on-exec (close_range(3, ~0, CLOSE_RANGE_CLOEXEC))
 *   5. writes 0x02 to fd 5 ("about to exec"), then execve(argv[1], &argv[2], envp): the builder
 *      runs with argv[0] = basename(builder) (passed by us as argv[2]) — bwrap 0.8 has no --argv0.
 *
 * Any failing step writes [0x01, step, errno] to fd 5 and exits 127, so the caller can tell
 * "the sandbox could not start the builder" apart from "the builder failed". bwrap executes the
 * helper as /proc/self/fd/3: nothing of it is visible inside the sandbox afterwards.
 */

import { andStack, EAX, EDI, EDX, elfExecutable, emit, type Emitter, ESI, failExit, finish, js, jnz, mark, movImm, rel32, step, syscall, testEax, u32 } from "./x86-elf.ts"

/** Steps reported in the failure record [0x01, step, errno]. */
export const helperSteps = {
  1: "dropping capabilities",
  2: "opening /dev/null as stdin",
  3: "setting up the pseudo-terminal",
  4: "connecting stdout and stderr",
  5: "closing inherited file descriptors",
  6: "executing the builder"
} as const

/** The descriptors the helper expects (the runner passes them at these numbers). */
export const helperFds = { self: 3, ptyMaster: 4, status: 5 } as const

// Linux x86_64 syscall numbers and constants
const SYS = { write: 1, open: 2, ioctl: 16, dup2: 33, execve: 59, umask: 95, capset: 126, prctl: 157, setrlimit: 160, exitGroup: 231, closeRange: 436 }
const PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_CLEAR_ALL = 4
const LINUX_CAPABILITY_VERSION_3 = 0x20080522
const RLIMIT_CORE = 4
const O_RDWR = 2, O_NOCTTY = 0o400
const TIOCSPTLCK = 0x40045431, TIOCGPTPEER = 0x5441, TCGETS = 0x5401, TCSETS = 0x5402
const CLOSE_RANGE_CLOEXEC = 4
// cfmakeraw() on the kernel's struct termios {u32 iflag, oflag, cflag, lflag; u8 line; u8 cc[19]}
const IFLAG_CLEAR = 0o1 | 0o2 | 0o10 | 0o40 | 0o100 | 0o200 | 0o400 | 0o2000 // IGNBRK BRKINT PARMRK ISTRIP INLCR IGNCR ICRNL IXON
const OFLAG_CLEAR = 0o1 // OPOST
const CFLAG_CLEAR = 0o60 | 0o400 // CSIZE PARENB
const CS8 = 0o60
const LFLAG_CLEAR = 0o10 | 0o100 | 0o2 | 0o1 | 0o100000 // ECHO ECHONL ICANON ISIG IEXTEN
const VTIME_OFFSET = 17 + 5 // c_cc[VTIME]; c_cc[VMIN] follows it

const program = (): Array<number> => {
  const e: Emitter = { bytes: [], labels: new Map(), fixups: [] }
  const { ptyMaster, status } = helperFds

  emit(e, 0x49, 0x89, 0xe4) //                       mov r12, rsp        (r12 → argc, argv…, envp…)
  emit(e, 0x48, 0x83, 0xec, 0x40) //                 sub rsp, 64         (scratch: termios, status bytes)

  step(e, 1) //                                      prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
  movImm(e, EAX, SYS.prctl); movImm(e, EDI, PR_CAP_AMBIENT); movImm(e, ESI, PR_CAP_AMBIENT_CLEAR_ALL); movImm(e, EDX, 0)
  emit(e, 0x45, 0x31, 0xd2) //                       xor r10d, r10d
  emit(e, 0x45, 0x31, 0xc0) //                       xor r8d, r8d
  syscall(e)
  testEax(e); jnz(e, "fail")
  emit(e, 0xc7, 0x04, 0x24, ...u32(LINUX_CAPABILITY_VERSION_3)) // header.version
  emit(e, 0xc7, 0x44, 0x24, 0x04, ...u32(0)) //      header.pid = 0 (this process)
  for (const disp of [8, 16, 24]) emit(e, 0x48, 0xc7, 0x44, 0x24, disp, ...u32(0)) // data[0..1] = 0
  movImm(e, EAX, SYS.capset)
  emit(e, 0x48, 0x89, 0xe7) //                       mov rdi, rsp
  emit(e, 0x48, 0x8d, 0x74, 0x24, 0x08) //           lea rsi, [rsp+8]
  syscall(e)
  testEax(e); jnz(e, "fail")

  movImm(e, EAX, SYS.umask); movImm(e, EDI, 0o22); syscall(e)
  for (const disp of [0, 8]) emit(e, 0x48, 0xc7, 0x44, 0x24, disp, ...u32(disp === 0 ? 0 : 0xffffffff)) // {0, ~0}
  movImm(e, EAX, SYS.setrlimit); movImm(e, EDI, RLIMIT_CORE)
  emit(e, 0x48, 0x89, 0xe6) //                       mov rsi, rsp
  syscall(e)

  step(e, 2) //                                      open("/dev/null", O_RDWR) → dup2(fd, 0)
  rel32(e, [0x48, 0x8d, 0x3d], "devnull") //         lea rdi, [rip + devnull]
  movImm(e, EAX, SYS.open); movImm(e, ESI, O_RDWR); movImm(e, EDX, 0); syscall(e)
  testEax(e); js(e, "fail")
  emit(e, 0x89, 0xc7) //                             mov edi, eax
  movImm(e, EAX, SYS.dup2); movImm(e, ESI, 0); syscall(e)
  testEax(e); js(e, "fail")

  step(e, 3) //                                      unlockpt(master)
  emit(e, 0xc7, 0x04, 0x24, ...u32(0)) //            mov dword [rsp], 0
  movImm(e, EAX, SYS.ioctl); movImm(e, EDI, ptyMaster); movImm(e, ESI, TIOCSPTLCK)
  emit(e, 0x48, 0x89, 0xe2) //                       mov rdx, rsp
  syscall(e)
  testEax(e); jnz(e, "fail")
  movImm(e, EAX, SYS.ioctl); movImm(e, EDI, ptyMaster); movImm(e, ESI, TIOCGPTPEER)
  movImm(e, EDX, O_RDWR | O_NOCTTY); syscall(e)
  testEax(e); js(e, "fail")
  emit(e, 0x41, 0x89, 0xc5) //                       mov r13d, eax       (slave fd)
  movImm(e, EAX, SYS.ioctl); emit(e, 0x44, 0x89, 0xef) /* mov edi, r13d */; movImm(e, ESI, TCGETS)
  emit(e, 0x48, 0x89, 0xe2); syscall(e) //           mov rdx, rsp
  testEax(e); jnz(e, "fail")
  andStack(e, 0, ~IFLAG_CLEAR)
  andStack(e, 4, ~OFLAG_CLEAR)
  andStack(e, 8, ~CFLAG_CLEAR)
  emit(e, 0x81, 0x4c, 0x24, 8, ...u32(CS8)) //       or dword [rsp+8], CS8
  andStack(e, 12, ~LFLAG_CLEAR)
  emit(e, 0x66, 0xc7, 0x44, 0x24, VTIME_OFFSET, 0, 1) // VTIME = 0, VMIN = 1
  movImm(e, EAX, SYS.ioctl); emit(e, 0x44, 0x89, 0xef); movImm(e, ESI, TCSETS)
  emit(e, 0x48, 0x89, 0xe2); syscall(e)
  testEax(e); jnz(e, "fail")

  step(e, 4) //                                      dup2(slave, 1); dup2(slave, 2)
  movImm(e, EAX, SYS.dup2); emit(e, 0x44, 0x89, 0xef); movImm(e, ESI, 1); syscall(e)
  testEax(e); js(e, "fail")
  movImm(e, EAX, SYS.dup2); emit(e, 0x44, 0x89, 0xef); movImm(e, ESI, 2); syscall(e)
  testEax(e); js(e, "fail")

  step(e, 5) //                                      close_range(3, ~0U, CLOSE_RANGE_CLOEXEC)
  movImm(e, EAX, SYS.closeRange); movImm(e, EDI, 3); movImm(e, ESI, 0xffffffff)
  movImm(e, EDX, CLOSE_RANGE_CLOEXEC); syscall(e)
  testEax(e); jnz(e, "fail")

  step(e, 6) //                                      write(status, "\x02", 1)
  emit(e, 0xc6, 0x04, 0x24, 0x02) //                 mov byte [rsp], 2
  movImm(e, EAX, SYS.write); movImm(e, EDI, status)
  emit(e, 0x48, 0x89, 0xe6) //                       mov rsi, rsp
  movImm(e, EDX, 1); syscall(e)
  emit(e, 0x49, 0x8b, 0x7c, 0x24, 0x10) //           mov rdi, [r12+16]   argv[1]
  emit(e, 0x49, 0x8d, 0x74, 0x24, 0x18) //           lea rsi, [r12+24]   &argv[2]
  emit(e, 0x49, 0x8b, 0x04, 0x24) //                 mov rax, [r12]      argc
  emit(e, 0x49, 0x8d, 0x54, 0xc4, 0x10) //           lea rdx, [r12+rax*8+16]  envp
  movImm(e, EAX, SYS.execve); syscall(e)

  failExit(e, status) //                             write(status, [1, step, errno], 3); exit(127)

  mark(e, "devnull")
  emit(e, ...new TextEncoder().encode("/dev/null\0"))

  return finish(e)
}

/** The helper as a complete static ELF64 executable. */
export const execHelperElf = (): Uint8Array => elfExecutable(program())
