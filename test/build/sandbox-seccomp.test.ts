/**
 * Our seccomp BPF against the filter libseccomp compiles for Nix 2.8's rules. Both programs run in
 * a small classic-BPF interpreter (below, test-only) on the same `struct seccomp_data` inputs:
 * every decision (allow, EPERM, ENOTSUP, kill) must agree — for all mode bits of every filtered
 * call on every architecture, and for random syscalls, architectures and arguments.
 *
 * The reference program was produced once with Debian's python3-seccomp 2.5.4 (the libseccomp
 * Nix 2.8 links against) from exactly Nix's rules:
 *   f = SyscallFilter(defaction=ALLOW); f.add_arch(Arch.X86); f.add_arch(Arch.X32)
 *   for perm in (S_ISUID, S_ISGID):
 *     f.add_rule(ERRNO(EPERM), "chmod", Arg(1, MASKED_EQ, perm, perm))
 *     f.add_rule(ERRNO(EPERM), "fchmod", Arg(1, MASKED_EQ, perm, perm))
 *     f.add_rule(ERRNO(EPERM), "fchmodat", Arg(2, MASKED_EQ, perm, perm))
 *   for sc in ("setxattr", "lsetxattr", "fsetxattr"): f.add_rule(ERRNO(ENOTSUP), sc)
 *   f.export_bpf(out)
 */
import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Result } from "effect"
import {
  AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, EPERM, ENOTSUP, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_THREAD,
  X32_SYSCALL_BIT, syscallNumbers
} from "../../src/layers/sandbox/seccomp.ts"
import { nixSeccompFilter } from "../../src/layers/sandbox/index.ts"

const libseccompProgram = Buffer.from(
  "IAAAAAQAAAAVAAATPgAAwCAAAAAAAAAAFQAWALwAAAAVABUAvQAAABUAFAC+AAAAFQATALwAAEAVABIAvQAAQBUAEQC+AABAFQATAFoAAEAVABIAWwAAQBUAGAAMAQBAFQABAFoAAAAVAAADWwAAACAAAAAcAAAAVAAAAAAAAAAVAAwZAAAAABUAABgMAQAAIAAAACQAAABUAAAAAAAAABUADxUAAAAAFQAAFgMAAEAgAAAAAAAAABUAAgDiAAAAFQABAOMAAAAVAAAB5AAAAAYAAABfAAUAFQABAA8AAAAVAAAGXgAAACAAAAAYAAAAVAAAAAAIAAAVAAsAAAgAACAAAAAYAAAAVAAAAAAEAAAVAAgHAAQAABUAAAYyAQAAIAAAACAAAABUAAAAAAgAABUABAAACAAAIAAAACAAAABUAAAAAAQAABUAAQAABAAABgAAAAAA/38GAAAAAQAFAAYAAAAAAAAA",
  "base64"
)

/** `struct seccomp_data`: nr, arch, instruction_pointer, args[6] (little-endian). */
interface SeccompData {
  readonly nr: number
  readonly arch: number
  readonly args: ReadonlyArray<bigint>
}

const encodeData = (d: SeccompData): DataView => {
  const view = new DataView(new ArrayBuffer(64))
  view.setUint32(0, d.nr >>> 0, true)
  view.setUint32(4, d.arch >>> 0, true)
  d.args.forEach((arg, i) => view.setBigUint64(16 + 8 * i, BigInt.asUintN(64, arg), true))
  return view
}

/** Runs a classic BPF program (the opcodes seccomp filters use) on one input; returns the RET value. */
const runBpf = (program: Uint8Array, data: SeccompData): number => {
  const code = new DataView(program.buffer, program.byteOffset, program.byteLength)
  const input = encodeData(data)
  let a = 0
  let pc = 0
  for (let steps = 0; steps < 4096; steps++) {
    if (pc * 8 >= program.byteLength) throw new Error(`fell off the program at ${pc}`)
    const op = code.getUint16(pc * 8, true), jt = code.getUint8(pc * 8 + 2), jf = code.getUint8(pc * 8 + 3)
    const k = code.getUint32(pc * 8 + 4, true)
    const jump = (cond: boolean) => { pc += 1 + (cond ? jt : jf) }
    switch (op) {
      case 0x20: a = input.getUint32(k, true); pc++; break // ld  [k]
      case 0x54: a = (a & k) >>> 0; pc++; break //            and #k
      case 0x05: pc += 1 + k; break //                         ja  +k
      case 0x15: jump(a === k); break //                       jeq #k
      case 0x25: jump(a > k); break //                         jgt #k
      case 0x35: jump(a >= k); break //                        jge #k
      case 0x45: jump((a & k) !== 0); break //                 jset #k
      case 0x06: return k //                                   ret #k
      default: throw new Error(`unexpected BPF opcode 0x${op.toString(16)} at ${pc}`)
    }
  }
  throw new Error("BPF program did not return")
}

const ours = Result.getOrThrow(nixSeccompFilter())
const x32 = (nr: number) => (nr | X32_SYSCALL_BIT) >>> 0
const filtered: Record<number, ReadonlyArray<number>> = {
  [AUDIT_ARCH_X86_64]: [...Object.values(syscallNumbers.x86_64), ...Object.values(syscallNumbers.x86_64).map(x32)],
  [AUDIT_ARCH_I386]: Object.values(syscallNumbers.i386)
}
const AUDIT_ARCH_AARCH64 = 0xc00000b7

describe("Nix's seccomp filter", () => {
  it("agrees with libseccomp's program on every mode of every filtered call, per architecture", () => {
    let compared = 0
    for (const arch of [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386]) {
      for (const nr of filtered[arch]!) {
        for (let mode = 0; mode < 0o10000; mode++) {
          for (const high of [0n, 0xffffffff00000000n]) {
            // the mode in arg 1 (chmod, fchmod) or arg 2 (fchmodat); the other args hold noise
            const args = [0x7fffn, BigInt(mode) | high, BigInt(mode) | high, 0n, 0n, 0n]
            const data = { nr, arch, args }
            expect(runBpf(ours, data)).toBe(runBpf(libseccompProgram, data))
            compared++
          }
        }
      }
    }
    expect(compared).toBe((12 + 6) * 4096 * 2)
  })

  it("agrees with libseccomp's program on random syscalls, architectures and arguments", () => {
    const arch = fc.oneof(
      fc.constantFrom(AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0),
      fc.integer({ min: 0, max: 0xffffffff })
    )
    const nr = fc.oneof(
      fc.constantFrom(...filtered[AUDIT_ARCH_X86_64]!, ...filtered[AUDIT_ARCH_I386]!, 0xffffffff, X32_SYSCALL_BIT),
      fc.integer({ min: 0, max: 600 }),
      fc.integer({ min: 0, max: 0xffffffff })
    )
    const arg = fc.oneof(fc.bigInt({ min: 0n, max: 0o7777n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))
    fc.assert(fc.property(arch, nr, fc.array(arg, { minLength: 6, maxLength: 6 }), (arch, nr, args) => {
      const data = { nr, arch, args }
      expect(runBpf(ours, data)).toBe(runBpf(libseccompProgram, data))
    }), { numRuns: 20000 })
  })

  it("says what the rules say", () => {
    const x86_64 = syscallNumbers.x86_64, i386 = syscallNumbers.i386
    const run = (arch: number, nr: number, mode: number, argIndex = 1) =>
      runBpf(ours, { nr, arch, args: [0n, 0n, 0n, 0n, 0n, 0n].map((v, i) => (i === argIndex ? BigInt(mode) : v)) })
    expect(run(AUDIT_ARCH_X86_64, x86_64.chmod, 0o4755)).toBe(SECCOMP_RET_ERRNO | EPERM)
    expect(run(AUDIT_ARCH_X86_64, x86_64.chmod, 0o2755)).toBe(SECCOMP_RET_ERRNO | EPERM)
    expect(run(AUDIT_ARCH_X86_64, x86_64.chmod, 0o1755)).toBe(SECCOMP_RET_ALLOW)
    expect(run(AUDIT_ARCH_X86_64, x86_64.fchmodat, 0o4755, 2)).toBe(SECCOMP_RET_ERRNO | EPERM)
    expect(run(AUDIT_ARCH_X86_64, x86_64.fchmodat, 0o4755, 1)).toBe(SECCOMP_RET_ALLOW) // the mode is arg 2
    expect(run(AUDIT_ARCH_X86_64, x32(x86_64.fchmod), 0o6000)).toBe(SECCOMP_RET_ERRNO | EPERM)
    expect(run(AUDIT_ARCH_I386, i386.chmod, 0o4000)).toBe(SECCOMP_RET_ERRNO | EPERM)
    expect(run(AUDIT_ARCH_I386, x86_64.chmod, 0o4000)).toBe(SECCOMP_RET_ALLOW) // 90 is not chmod on i386
    expect(run(AUDIT_ARCH_X86_64, x86_64.lsetxattr, 0)).toBe(SECCOMP_RET_ERRNO | ENOTSUP)
    expect(run(AUDIT_ARCH_I386, i386.fsetxattr, 0)).toBe(SECCOMP_RET_ERRNO | ENOTSUP)
    expect(run(AUDIT_ARCH_AARCH64, 90, 0)).toBe(SECCOMP_RET_KILL_THREAD)
  })
})
