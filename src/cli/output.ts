/**
 * The global output flags every command honours, wherever they appear on the command line:
 *
 *   --json      machine-readable results on stdout (one JSON value, or one per line for per-item commands)
 *   --quiet/-q  results only: no progress, no summaries, no access log
 *   --verbose   more detail on stderr: build logs, per-path lines, debug logging, the full cause of a crash
 *
 * They are Effect CLI global settings (`GlobalFlag.Setting`): the root command declares them once
 * (main.ts) and every handler reads them with `yield* outputMode`.
 */
import { Console, Effect, Schema } from "effect"
import { Flag, GlobalFlag } from "effect/cli"

export const JsonOutput = GlobalFlag.Setting("json")({
  flag: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print machine-readable JSON on stdout"))
})

export const Quiet = GlobalFlag.Setting("quiet")({
  flag: Flag.Boolean("quiet").pipe(Flag.withAlias("q"), Flag.withDefault(false),
    Flag.withDescription("print results only: no progress, summaries or access log"))
})

export const Verbose = GlobalFlag.Setting("verbose")({
  flag: Flag.Boolean("verbose").pipe(Flag.withDefault(false),
    Flag.withDescription("print more on stderr: build logs, each path copied, debug logs"))
})

export const outputFlags = [JsonOutput, Quiet, Verbose] as const

export interface OutputMode {
  readonly json: boolean
  readonly quiet: boolean
  readonly verbose: boolean
}

/** The output flags of this invocation. */
export const outputMode = Effect.gen(function*() {
  const json = yield* JsonOutput
  const quiet = yield* Quiet
  const verbose = yield* Verbose
  return { json, quiet, verbose: verbose && !quiet } satisfies OutputMode
})

/** A command whose output is raw data (a NAR, a file, a log) has no JSON form. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { reason: Schema.String }) {
  override get message() { return this.reason }
}

export const rejectJson = (command: string, output: string) => Effect.gen(function*() {
  if (yield* JsonOutput) return yield* new UsageError({ reason: `'${command}' writes ${output}, which has no JSON form; leave out --json` })
})

/** Prints one JSON value as a line on stdout. */
export const printJson = (value: unknown) => Console.log(JSON.stringify(value))
