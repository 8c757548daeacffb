/**
 * A minimal x86_64 emitter (raw bytes plus rel32 fix-ups for labels) and the static ELF64 wrapper
 * around the code it makes: what the sandbox's tiny helper programs (exec-helper.ts,
 * root-stage.ts) are written with.
 */

export interface Emitter {
  readonly bytes: Array<number>
  readonly labels: Map<string, number>
  readonly fixups: Array<{ readonly at: number; readonly label: string }>
}

export const u32 = (value: number): Array<number> => {
  const v = value >>> 0
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]
}

export const emit = (e: Emitter, ...bytes: Array<number>) => { e.bytes.push(...bytes) }
export const mark = (e: Emitter, name: string) => { e.labels.set(name, e.bytes.length) }
/** Emits `opcode` followed by a rel32 to `label` (relative to the end of the instruction). */
export const rel32 = (e: Emitter, opcode: Array<number>, label: string) => {
  emit(e, ...opcode)
  e.fixups.push({ at: e.bytes.length, label })
  emit(e, 0, 0, 0, 0)
}

// Registers by their 3-bit encoding, for the `mov r32, imm32` family (opcode 0xb8 + reg).
export const EAX = 0, EDX = 2, ESI = 6, EDI = 7
export const movImm = (e: Emitter, reg: number, value: number) => emit(e, 0xb8 + reg, ...u32(value))
export const syscall = (e: Emitter) => emit(e, 0x0f, 0x05)
export const testEax = (e: Emitter) => emit(e, 0x85, 0xc0)
export const js = (e: Emitter, label: string) => rel32(e, [0x0f, 0x88], label)
export const jnz = (e: Emitter, label: string) => rel32(e, [0x0f, 0x85], label)
/** mov r14d, step — the step number reported if the next syscalls fail */
export const step = (e: Emitter, n: number) => emit(e, 0x41, 0xbe, ...u32(n))
/** and dword [rsp+disp8], imm32 */
export const andStack = (e: Emitter, disp: number, mask: number) => emit(e, 0x81, 0x64, 0x24, disp, ...u32(mask))

/** Resolves the rel32 fix-ups; gives the code. */
/**
 * The `fail` label both generated programs end with: reports `[1, step, errno]` on the status pipe
 * `statusFd` (the step is in r14b, the failing system call's -errno in eax) and exits with 127.
 */
export const failExit = (e: Emitter, statusFd: number) => {
  mark(e, "fail")
  emit(e, 0xf7, 0xd8) //                             neg eax
  emit(e, 0x88, 0x44, 0x24, 0x02) //                 mov byte [rsp+2], al
  emit(e, 0x44, 0x88, 0x74, 0x24, 0x01) //           mov byte [rsp+1], r14b
  emit(e, 0xc6, 0x04, 0x24, 0x01) //                 mov byte [rsp], 1
  movImm(e, EAX, 1); movImm(e, EDI, statusFd) //     write(status, rsp, 3)
  emit(e, 0x48, 0x89, 0xe6); movImm(e, EDX, 3); syscall(e) // mov rsi, rsp
  movImm(e, EAX, 231); movImm(e, EDI, 127); syscall(e) // exit_group(127)
}

export const finish = (e: Emitter): Array<number> => {
  for (const { at, label } of e.fixups) {
    const target = e.labels.get(label)
    if (target === undefined) throw new Error(`unknown label ${label}`)
    e.bytes.splice(at, 4, ...u32(target - (at + 4)))
  }
  return e.bytes
}

const BASE = 0x400000
const HEADERS = 64 + 2 * 56

/** A complete static ELF64 executable of `code` (one PT_LOAD, plus PT_GNU_STACK = non-exec). */
export const elfExecutable = (code: ReadonlyArray<number>): Uint8Array => {
  const size = HEADERS + code.length
  const out = new Uint8Array(size)
  const v = new DataView(out.buffer)
  out.set([0x7f, 0x45, 0x4c, 0x46, 2 /* 64-bit */, 1 /* LE */, 1 /* version */, 0 /* SysV */])
  v.setUint16(16, 2, true) //             e_type = ET_EXEC
  v.setUint16(18, 0x3e, true) //          e_machine = x86_64
  v.setUint32(20, 1, true) //             e_version
  v.setBigUint64(24, BigInt(BASE + HEADERS), true) // e_entry
  v.setBigUint64(32, 64n, true) //        e_phoff
  v.setUint16(52, 64, true) //            e_ehsize
  v.setUint16(54, 56, true) //            e_phentsize
  v.setUint16(56, 2, true) //             e_phnum
  const ph = (at: number, type: number, flags: number, fileSize: number, vaddr: number, align: number) => {
    v.setUint32(at, type, true)
    v.setUint32(at + 4, flags, true)
    v.setBigUint64(at + 16, BigInt(vaddr), true) // p_vaddr
    v.setBigUint64(at + 24, BigInt(vaddr), true) // p_paddr
    v.setBigUint64(at + 32, BigInt(fileSize), true) // p_filesz
    v.setBigUint64(at + 40, BigInt(fileSize), true) // p_memsz
    v.setBigUint64(at + 48, BigInt(align), true)
  }
  ph(64, 1 /* PT_LOAD */, 5 /* R+X */, size, BASE, 0x1000)
  ph(120, 0x6474e551 /* PT_GNU_STACK */, 6 /* R+W */, 0, 0, 16)
  out.set(code, HEADERS)
  return out
}
