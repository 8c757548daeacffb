/**
 * A NAR as a stream of events. The root is one node; a node is
 *
 *   File(executable, size)  Contents(bytes)*  FileEnd      (the Contents add up to `size` bytes)
 *   Symlink(target)
 *   Directory  (Entry(name) node)*  DirectoryEnd          (names strictly ascending, bytewise)
 *
 * Names and targets are raw bytes: a NAR does not require UTF-8. Decoding (`decode.ts`) yields exactly
 * this grammar; encoding (`encode.ts`) checks it.
 */

export interface DirectoryStart { readonly _tag: "Directory" }
export interface DirectoryEntry { readonly _tag: "Entry"; readonly name: Uint8Array }
export interface DirectoryEnd { readonly _tag: "DirectoryEnd" }
export interface FileStart { readonly _tag: "File"; readonly executable: boolean; readonly size: number }
export interface FileContents { readonly _tag: "Contents"; readonly bytes: Uint8Array }
export interface FileEnd { readonly _tag: "FileEnd" }
export interface SymlinkNode { readonly _tag: "Symlink"; readonly target: Uint8Array }

export type NarEvent = DirectoryStart | DirectoryEntry | DirectoryEnd | FileStart | FileContents | FileEnd | SymlinkNode

const utf8 = new TextEncoder()
const bytesOf = (s: Uint8Array | string): Uint8Array => typeof s === "string" ? utf8.encode(s) : s

export const directory: DirectoryStart = { _tag: "Directory" }
export const directoryEnd: DirectoryEnd = { _tag: "DirectoryEnd" }
export const fileEnd: FileEnd = { _tag: "FileEnd" }
export const entry = (name: Uint8Array | string): DirectoryEntry => ({ _tag: "Entry", name: bytesOf(name) })
export const file = (size: number, executable = false): FileStart => ({ _tag: "File", executable, size })
export const contents = (bytes: Uint8Array): FileContents => ({ _tag: "Contents", bytes })
export const symlink = (target: Uint8Array | string): SymlinkNode => ({ _tag: "Symlink", target: bytesOf(target) })

/** Limits on what a NAR may declare; they bound memory whatever the length fields claim. */
export interface NarLimits {
  /** longest file name in bytes (Linux NAME_MAX) */
  readonly maxNameLength: number
  /** longest symlink target in bytes (Linux PATH_MAX - 1) */
  readonly maxTargetLength: number
  /** deepest directory nesting */
  readonly maxDepth: number
}

export const defaultLimits: NarLimits = { maxNameLength: 255, maxTargetLength: 4095, maxDepth: 1024 }

/** Bytewise comparison (the order of NAR directory entries). */
export const compareBytes = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** Why `name` cannot be a NAR entry name, or undefined when it can. */
export const invalidNameReason = (name: Uint8Array, maxLength: number): string | undefined => {
  if (name.length === 0) return "empty file name"
  if (name.length > maxLength) return `file name longer than ${maxLength} bytes`
  if (name.length <= 2 && name[0] === 0x2e && (name.length === 1 || name[1] === 0x2e)) {
    return `invalid file name '${name.length === 1 ? "." : ".."}'`
  }
  for (let i = 0; i < name.length; i++) {
    if (name[i] === 0x2f) return "file name contains '/'"
    if (name[i] === 0) return "file name contains a NUL byte"
  }
  return undefined
}

/** Why `target` cannot be a symlink target, or undefined when it can. */
export const invalidTargetReason = (target: Uint8Array, maxLength: number): string | undefined => {
  if (target.length === 0) return "empty symlink target"
  if (target.length > maxLength) return `symlink target longer than ${maxLength} bytes`
  if (target.indexOf(0) >= 0) return "symlink target contains a NUL byte"
  return undefined
}

/** Largest file size a NAR may declare here: sizes are JS numbers, exact up to 2^53 - 1. */
export const maxFileSize = Number.MAX_SAFE_INTEGER
