/**
 * What the pipeline runner does once it knows its options (run-pipeline.ts, from the library bundle or
 * the sources; run-snapshot-entry.ts, from the runner's startup snapshot): runs the pipeline with its
 * stores, prints its result (as JSON with --json), and exits with the code of its error, one line on
 * stderr. SIGINT/SIGTERM interrupt the program, so its scopes close and its finalizers run (exit 130).
 */
import { Cause, Effect } from "effect"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { resolve } from "node:path"
import { existsSync } from "node:fs"
import { resultText, runPipeline } from "../compose/pipeline.ts"
import { FileNotFound } from "../nar/fs/errors.ts"
import { loadConfig } from "./config.ts"
import { exitCodeFor, exitTeardown, messageOf } from "./exit.ts"
import type { RunInvocation } from "./run-argv.ts"

export interface RunOptions {
  readonly pipeline: string
  readonly store: string
  readonly cache?: string
  readonly json: boolean
  readonly quiet: boolean
  readonly verbose: boolean
  readonly plugins?: ReadonlyArray<string>
}

/**
 * A command line the runner read itself (run-argv.ts) as the CLI's `b3 run` would pass it on: the
 * store and the plugins from the configuration unless given, and the pipeline as it was written if
 * it does not exist (the error names it so).
 */
export const fromInvocation = (invocation: RunInvocation) => {
  const config = loadConfig()
  const pipeline = resolve(invocation.pipeline)
  const { cache, json, quiet, verbose } = invocation
  const options: RunOptions = { pipeline, store: invocation.store ?? config.store, ...(cache !== undefined ? { cache } : {}), plugins: config.plugins, json, quiet, verbose }
  return { options, args: invocation.args, missing: existsSync(pipeline) ? undefined : invocation.pipeline }
}

/** Runs the pipeline in this process, which ends with its exit code. */
export const runPipelineMain = (options: RunOptions, args: ReadonlyArray<string>, missing?: string): void => {
  // The pipeline sees its own arguments as a script would: process.argv = [node, PIPELINE, ARGS…].
  process.argv = [process.argv[0]!, options.pipeline, ...args]
  if (options.quiet) process.env.B3_QUIET = "1"

  const program = (missing !== undefined ? Effect.fail(new FileNotFound({ path: missing })) : runPipeline({ ...options, args })).pipe(
    Effect.flatMap((value) => Effect.sync(() => {
      const text = options.json ? JSON.stringify(value ?? null) : resultText(value)
      if (text !== undefined) process.stdout.write(text + "\n")
    })),
    Effect.catchCause((cause) => Effect.sync(() => {
      if (Cause.hasInterruptsOnly(cause)) { process.exitCode = 130; return }
      const error = Cause.squash(cause)
      process.stderr.write(`b3: ${messageOf(error)}\n`)
      if (options.verbose && Cause.hasDies(cause)) process.stderr.write(Cause.pretty(cause) + "\n")
      process.exitCode = exitCodeFor(error)
    }))
  )

  NodeRuntime.runMain(program, { disableErrorReporting: true, teardown: exitTeardown })
}
