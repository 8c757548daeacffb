/** Typed errors of the NAR filesystem side: dumping a path and restoring a NAR. */
import { Schema } from "effect"
import type { BadNar } from "../errors.ts"

/** The path to serialise does not exist. */
export class FileNotFound extends Schema.TaggedError<FileNotFound>()("FileNotFound", {
  path: Schema.String
}) {
  override get message() { return `path '${this.path}' does not exist` }
}

/** A file a NAR cannot represent: sockets, FIFOs, devices. */
export class UnsupportedFileType extends Schema.TaggedError<UnsupportedFileType>()("UnsupportedFileType", {
  path: Schema.String,
  kind: Schema.String
}) {
  override get message() { return `cannot put '${this.path}' in a NAR: it is a ${this.kind} (only regular files, directories and symlinks are allowed)` }
}

/** A filesystem operation failed while dumping or restoring (`code` is the errno name, e.g. EACCES). */
export class NarIoError extends Schema.TaggedError<NarIoError>()("NarIoError", {
  path: Schema.String,
  operation: Schema.String,
  code: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `${this.operation} '${this.path}' failed: ${this.reason}` }
}

/** `restoreNar` never replaces anything: the target must not exist. */
export class TargetExists extends Schema.TaggedError<TargetExists>()("TargetExists", {
  path: Schema.String
}) {
  override get message() { return `cannot restore to '${this.path}': it already exists` }
}

export type NarFsError = FileNotFound | UnsupportedFileType | NarIoError
export type NarError = BadNar | NarFsError | TargetExists

/** Turns an exception thrown by node:fs into a typed error (ENOENT on `path` becomes FileNotFound when asked). */
export const fsError = (error: unknown, operation: string, path: string): NarIoError => {
  const e = error as { code?: unknown; message?: unknown }
  const code = typeof e?.code === "string" ? e.code : "EUNKNOWN"
  const message = typeof e?.message === "string" ? e.message : String(error)
  return new NarIoError({ path, operation, code, reason: errnoDescription(message) })
}

/** Node's fs messages repeat the errno name, syscall and path ("ENOENT: no such file…, open '/x'"): keep the description. */
export const errnoDescription = (message: string): string => message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "")
