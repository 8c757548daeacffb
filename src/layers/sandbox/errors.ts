/**
 * Typed failures of a sandboxed build. Each carries what a user needs to act on it; `message` says
 * it in one sentence (plus the builder's last log lines where there are some).
 */
import { Schema } from "effect"

const tailHeading = "\nlast log lines:\n"

const withTail = (text: string, logTail: string) =>
  logTail.length > 0 ? `${text}${tailHeading}${logTail}` : text

/** An error's message without the log lines `withTail` appends (for callers that show the log apart). */
export const withoutTail = (message: string): string => {
  const cut = message.indexOf(tailHeading)
  return cut >= 0 ? message.slice(0, cut) : message
}

/** The host cannot run sandboxed builds at all (not root, no bubblewrap, no user namespaces…). */
export class SandboxUnavailable extends Schema.TaggedError<SandboxUnavailable>()("SandboxUnavailable", {
  reason: Schema.String
}) {
  override get message() { return `cannot run sandboxed builds on this machine: ${this.reason}` }
}

/** No usable build user, and we may not create one. */
export class BuildUserUnavailable extends Schema.TaggedError<BuildUserUnavailable>()("BuildUserUnavailable", {
  reason: Schema.String
}) {
  override get message() { return `no build user: ${this.reason}` }
}

/** Preparing or entering the sandbox failed before the builder ran (bad spec, mount error…). */
export class SandboxSetupFailed extends Schema.TaggedError<SandboxSetupFailed>()("SandboxSetupFailed", {
  drvName: Schema.String,
  reason: Schema.String,
  logTail: Schema.String
}) {
  override get message() {
    return withTail(`setting up the sandbox for '${this.drvName}' failed: ${this.reason}`, this.logTail)
  }
}

/** The builder ran and exited with a non-zero status (or was killed by a signal). */
export class BuilderFailed extends Schema.TaggedError<BuilderFailed>()("BuilderFailed", {
  drvName: Schema.String,
  exitCode: Schema.Number,
  logTail: Schema.String
}) {
  override get message() {
    const how = this.exitCode > 128 ? `was killed by signal ${this.exitCode - 128}` : `failed with exit code ${this.exitCode}`
    return withTail(`builder for '${this.drvName}' ${how}`, this.logTail)
  }
}

/** The builder succeeded but did not produce one of its outputs. */
export class OutputMissing extends Schema.TaggedError<OutputMissing>()("OutputMissing", {
  drvName: Schema.String,
  output: Schema.String,
  logTail: Schema.String
}) {
  override get message() {
    return withTail(`builder for '${this.drvName}' failed to produce output path '${this.output}'`, this.logTail)
  }
}

/** The build ran longer than its time limit and was killed. */
export class BuildTimedOut extends Schema.TaggedError<BuildTimedOut>()("BuildTimedOut", {
  drvName: Schema.String,
  seconds: Schema.Number,
  logTail: Schema.String
}) {
  override get message() {
    return withTail(`building '${this.drvName}' timed out after ${this.seconds} seconds`, this.logTail)
  }
}

/** The build wrote nothing to its log for longer than the silence limit and was killed. */
export class BuildSilenceTimedOut extends Schema.TaggedError<BuildSilenceTimedOut>()("BuildSilenceTimedOut", {
  drvName: Schema.String,
  seconds: Schema.Number,
  logTail: Schema.String
}) {
  override get message() {
    return withTail(`building '${this.drvName}' timed out after ${this.seconds} seconds of silence`, this.logTail)
  }
}

export type SandboxError =
  | SandboxUnavailable
  | BuildUserUnavailable
  | SandboxSetupFailed
  | BuilderFailed
  | OutputMissing
  | BuildTimedOut
  | BuildSilenceTimedOut

/** An output could not be put into canonical form (see canonicalise.ts). */
export class CanonicaliseFailed extends Schema.TaggedError<CanonicaliseFailed>()("CanonicaliseFailed", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `cannot canonicalise '${this.path}': ${this.reason}` }
}
