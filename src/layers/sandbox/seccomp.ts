/**
 * Nix 2.8's seccomp filter (`setupSeccomp()` in local-derivation-goal.cc), compiled to a classic
 * BPF program by our own small generator, for bubblewrap's `--seccomp FD`.
 *
 * Policy (default ALLOW; architectures x86_64, i386 and x32 — what Nix adds on x86_64-linux):
 *   chmod/fchmod (mode = arg 1) and fchmodat (mode = arg 2) with S_ISUID or S_ISGID set → EPERM
 *   setxattr/lsetxattr/fsetxattr → ENOTSUP
 *   any other architecture → kill (libseccomp's default "bad architecture" action)
 *
 * `struct sock_filter` is 8 bytes: u16 code, u8 jt, u8 jf, u32 k (host byte order: little-endian
 * on every architecture this filter describes). `struct seccomp_data`: u32 nr at 0, u32 arch at 4,
 * u64 instruction_pointer at 8, u64 args[6] from 16; the low half of args[i] is at 16 + 8·i.
 */
import { Result } from "effect"

// BPF opcodes (linux/bpf_common.h)
const BPF_LD_W_ABS = 0x20 // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JSET_K = 0x45 // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K = 0x06 // BPF_RET | BPF_K

// seccomp return values (linux/seccomp.h)
export const SECCOMP_RET_KILL_THREAD = 0x00000000
export const SECCOMP_RET_ERRNO = 0x00050000
export const SECCOMP_RET_ALLOW = 0x7fff0000

// audit architectures (linux/audit.h)
export const AUDIT_ARCH_X86_64 = 0xc000003e
export const AUDIT_ARCH_I386 = 0x40000003
/** x32 syscalls use AUDIT_ARCH_X86_64 with this bit set in the syscall number. */
export const X32_SYSCALL_BIT = 0x40000000

export const EPERM = 1
export const ENOTSUP = 95
const S_ISUID = 0o4000
const S_ISGID = 0o2000

/** Syscall numbers per ABI; x32 shares the x86_64 numbers (plus X32_SYSCALL_BIT) for these calls. */
export const syscallNumbers = {
  x86_64: { chmod: 90, fchmod: 91, fchmodat: 268, setxattr: 188, lsetxattr: 189, fsetxattr: 190 },
  i386: { chmod: 15, fchmod: 94, fchmodat: 306, setxattr: 226, lsetxattr: 227, fsetxattr: 228 }
} as const

type Numbers = { readonly [K in keyof typeof syscallNumbers.x86_64]: number }

const x32Numbers: Numbers = Object.fromEntries(
  Object.entries(syscallNumbers.x86_64).map(([name, nr]) => [name, (nr | X32_SYSCALL_BIT) >>> 0])
) as unknown as Numbers

export interface BpfInstruction {
  readonly code: number
  readonly jt: number
  readonly jf: number
  readonly k: number
}

// --- a tiny assembler: jumps name labels, resolved to the forward offsets BPF requires ---

type Item =
  | { readonly op: "label"; readonly name: string }
  | { readonly op: "insn"; readonly code: number; readonly k: number; readonly jt?: string; readonly jf?: string }

const label = (name: string): Item => ({ op: "label", name })
const load = (offset: number): Item => ({ op: "insn", code: BPF_LD_W_ABS, k: offset })
const ret = (value: number): Item => ({ op: "insn", code: BPF_RET_K, k: value })
/** if (A == k) goto then else fall through */
const jeq = (k: number, then: string): Item => ({ op: "insn", code: BPF_JEQ_K, k, jt: then })
/** if (A & k) goto then else goto otherwise */
const jset = (k: number, then: string, otherwise: string): Item =>
  ({ op: "insn", code: BPF_JSET_K, k, jt: then, jf: otherwise })
/** if (A == k) goto then else goto otherwise */
const jeqElse = (k: number, then: string, otherwise: string): Item =>
  ({ op: "insn", code: BPF_JEQ_K, k, jt: then, jf: otherwise })

/** Resolves labels; fails (instead of producing a wrong filter) on a backward or too-long jump. */
const assemble = (items: ReadonlyArray<Item>): Result.Result<ReadonlyArray<BpfInstruction>, string> => {
  const positions = new Map<string, number>()
  let pc = 0
  for (const item of items) {
    if (item.op === "label") positions.set(item.name, pc)
    else pc++
  }
  const program: Array<BpfInstruction> = []
  const bad: Array<string> = []
  const offset = (from: number, target: string | undefined): number => {
    if (target === undefined) return 0
    const to = positions.get(target)
    // Classic BPF only jumps forward, by at most 255 instructions.
    if (to === undefined || to <= from || to - from - 1 > 255) {
      bad.push(`bad jump from ${from} to '${target}'`)
      return 0
    }
    return to - from - 1
  }
  for (const item of items) {
    if (item.op === "label") continue
    const at = program.length
    program.push({ code: item.code, jt: offset(at, item.jt), jf: offset(at, item.jf), k: item.k >>> 0 })
  }
  return bad.length === 0 ? Result.succeed(program) : Result.fail(`seccomp assembler: ${bad.join("; ")}`)
}

const argLow = (index: number) => 16 + 8 * index

/** The checks for one ABI: xattr calls → ENOTSUP, chmod family → the mode-bit check, else ALLOW. */
const abiChecks = (numbers: ReadonlyArray<Numbers>): Array<Item> => [
  load(0),
  ...numbers.flatMap((n) => [jeq(n.setxattr, "enotsup"), jeq(n.lsetxattr, "enotsup"), jeq(n.fsetxattr, "enotsup")]),
  ...numbers.flatMap((n) => [jeq(n.chmod, "mode-arg1"), jeq(n.fchmod, "mode-arg1"), jeq(n.fchmodat, "mode-arg2")]),
  ret(SECCOMP_RET_ALLOW)
]

/** The filter as instructions. */
export const nixSeccompProgram = (): Result.Result<ReadonlyArray<BpfInstruction>, string> => {
  const items: Array<Item> = [
    load(4),
    jeq(AUDIT_ARCH_X86_64, "x86_64"),
    jeqElse(AUDIT_ARCH_I386, "i386", "kill"),
    label("x86_64"),
    // x86_64 and x32 share the audit arch; x32 numbers carry X32_SYSCALL_BIT, so both sets can
    // be checked in one list without overlap (libseccomp merges them the same way).
    ...abiChecks([syscallNumbers.x86_64, x32Numbers]),
    label("i386"),
    ...abiChecks([syscallNumbers.i386]),
    label("mode-arg1"),
    load(argLow(1)),
    jset(S_ISUID | S_ISGID, "eperm", "allow"),
    label("mode-arg2"),
    load(argLow(2)),
    jset(S_ISUID | S_ISGID, "eperm", "allow"),
    label("eperm"),
    ret(SECCOMP_RET_ERRNO | EPERM),
    label("enotsup"),
    ret(SECCOMP_RET_ERRNO | ENOTSUP),
    label("allow"),
    ret(SECCOMP_RET_ALLOW),
    label("kill"),
    ret(SECCOMP_RET_KILL_THREAD)
  ]
  return assemble(items)
}

/** Serialises instructions as an array of `struct sock_filter` (what `bwrap --seccomp` reads). */
export const encodeProgram = (program: ReadonlyArray<BpfInstruction>): Uint8Array => {
  const bytes = new Uint8Array(program.length * 8)
  const view = new DataView(bytes.buffer)
  program.forEach((insn, i) => {
    view.setUint16(i * 8, insn.code, true)
    view.setUint8(i * 8 + 2, insn.jt)
    view.setUint8(i * 8 + 3, insn.jf)
    view.setUint32(i * 8 + 4, insn.k, true)
  })
  return bytes
}

/** The BPF bytes of Nix's filter. */
export const nixSeccompFilter = (): Result.Result<Uint8Array, string> => Result.map(nixSeccompProgram(), encodeProgram)
