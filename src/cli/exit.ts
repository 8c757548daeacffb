/**
 * How the CLI ends: one line on stderr (no stack trace) and an exit code a script can branch on.
 *
 *   0 success · 1 other failure · 2 bad input or usage · 3 not found
 *   4 hash, size or signature mismatch · 5 build failed
 */
export const ExitCode = { ok: 0, failure: 1, badInput: 2, notFound: 3, mismatch: 4, buildFailed: 5 } as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** Error tags that map to a specific exit code; every other failure exits 1. */
const exitCodeByTag: Record<string, ExitCode> = {
  InvalidEncoding: ExitCode.badInput,
  InvalidHash: ExitCode.badInput,
  InvalidStorePath: ExitCode.badInput,
  InvalidContentAddress: ExitCode.badInput,
  InvalidDerivation: ExitCode.badInput,
  InvalidNarInfo: ExitCode.badInput,
  InvalidDerivationArgs: ExitCode.badInput,
  InvalidCacheInfo: ExitCode.badInput,
  InvalidKey: ExitCode.badInput,
  BadNar: ExitCode.badInput,
  TargetExists: ExitCode.badInput,
  UnsupportedFileType: ExitCode.badInput,
  UsageError: ExitCode.badInput,
  FileTooLarge: ExitCode.badInput,
  BadStoreUri: ExitCode.badInput,
  PathNotValid: ExitCode.notFound,
  FileNotFound: ExitCode.notFound,
  MissingDerivation: ExitCode.notFound,
  HashMismatch: ExitCode.mismatch,
  SignatureError: ExitCode.mismatch,
  BuildFailed: ExitCode.buildFailed,
  FarmBuildFailed: ExitCode.buildFailed,
  SubmissionNotFound: ExitCode.notFound,
  FarmNotReady: ExitCode.badInput,
  BadBuildTarget: ExitCode.badInput,
  NoBuildLog: ExitCode.notFound,
  Unsupported: ExitCode.badInput,
  OutputHashMismatch: ExitCode.mismatch,
  OutputRejected: ExitCode.buildFailed,
  MissingSystemFeatures: ExitCode.buildFailed,
  PostBuildHookFailed: ExitCode.buildFailed,
  InvalidDerivationAttribute: ExitCode.buildFailed,
  SandboxSetupFailed: ExitCode.buildFailed,
  SandboxUnavailable: ExitCode.buildFailed,
  BuilderFailed: ExitCode.buildFailed,
  OutputMissing: ExitCode.buildFailed,
  BuildTimedOut: ExitCode.buildFailed,
  BuildSilenceTimedOut: ExitCode.buildFailed,
  BadPipeline: ExitCode.badInput,
  ReferenceCycle: ExitCode.failure,
  ServiceUnavailable: ExitCode.badInput
}

export const exitCodeFor = (error: unknown): ExitCode => {
  if (typeof error === "object" && error !== null) {
    const tag = (error as { _tag?: unknown })._tag
    if (typeof tag === "string" && tag in exitCodeByTag) return exitCodeByTag[tag]!
    const reason = (error as { reason?: { _tag?: unknown } }).reason
    if (tag === "PlatformError" && reason?._tag === "NotFound") return ExitCode.notFound
  }
  return ExitCode.failure
}

/** What a file-system failure (Effect's PlatformError) means for the file, in words. */
const systemErrorWords: Record<string, string> = {
  NotFound: "no such file or directory",
  PermissionDenied: "permission denied",
  AlreadyExists: "it already exists",
  BadResource: "not a usable file (is it a directory?)",
  Busy: "the file is busy"
}

const platformErrorMessage = (reason: { _tag?: unknown; pathOrDescriptor?: unknown; description?: unknown }): string | undefined => {
  if (typeof reason._tag !== "string" || reason.pathOrDescriptor === undefined) return undefined
  const words = systemErrorWords[reason._tag] ?? (typeof reason.description === "string" && reason.description) ?? reason._tag
  return `${String(reason.pathOrDescriptor)}: ${words}`
}

/** Longest line of an error message shown; what a cache or builder sent can be any length. */
const maxLineLength = 500
const maxLines = 60

/**
 * An error message safe for a terminal: control characters (ESC, BEL, …: what a hostile cache or
 * builder may put in a field) escaped as `\xNN`, each line cut at `maxLineLength` characters and the
 * message at `maxLines` lines, saying how much was left out.
 */
export const sanitizeMessage = (message: string): string => {
  const lines = message.split("\n")
  const shown = lines.slice(0, maxLines).map((line) => {
    const escaped = line.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    return escaped.length > maxLineLength ? `${escaped.slice(0, maxLineLength)}… (${escaped.length - maxLineLength} more characters)` : escaped
  })
  if (lines.length > maxLines) shown.push(`… (${lines.length - maxLines} more lines)`)
  return shown.join("\n")
}

const rawMessageOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "PlatformError") {
    const message = platformErrorMessage((error as { reason: { _tag?: unknown } }).reason ?? {})
    if (message) return message
  }
  if (error instanceof Error && error.message) return error.message
  if (typeof error === "object" && error !== null && "message" in error) return String((error as { message: unknown }).message)
  return String(error)
}

/**
 * An error whose message is empty still says what it is: its tag (or class), and what it was
 * caused by, as far as the chain of causes has words.
 */
const describedMessageOf = (error: unknown, depth = 0): string => {
  const message = rawMessageOf(error)
  if (message !== "" || typeof error !== "object" || error === null) return message
  const tag = (error as { _tag?: unknown })._tag
  const name = typeof tag === "string" ? tag : (error as { constructor?: { name?: string } }).constructor?.name ?? "error"
  const cause = (error as { cause?: unknown }).cause
  const because = cause !== undefined && depth < 5 ? describedMessageOf(cause, depth + 1) : ""
  return `${name} (no message)${because ? `: ${because}` : ""}`
}

/** The one-line (or, for a build failure, few-line) message the CLI prints for an error. */
export const messageOf = (error: unknown): string => sanitizeMessage(describedMessageOf(error))

/**
 * `NodeRuntime.runMain`'s teardown for b3's entry points: the exit code is the one the program set
 * (`process.exitCode`), else 130 if it was interrupted (Ctrl-C, SIGTERM), else 0.
 */
export const exitTeardown = (exit: { readonly _tag: "Success" | "Failure" }, onExit: (code: number) => void) =>
  onExit(Number(process.exitCode ?? (exit._tag === "Failure" ? 130 : 0)))
