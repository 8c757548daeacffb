/**
 * The process a pipeline runs in. It runs from b3's library bundle (dist/lib/, scripts/bundle-lib.ts)
 * or unbundled modules (the sources in a checkout, lib/ compiled from them in the npm package), so the
 * pipeline's `import … from "b3"` and `"effect"` are the very modules its services and errors come from
 * (the CLI bundle has its own copy of both; errors from one copy are not `instanceof` the other's
 * classes). It is started two ways:
 *
 *   node dist/lib/run-pipeline.mjs --argv ARGV…     by the launcher (bin/b3, bin/b3.cjs) for `b3 run …`:
 *                                                    ARGV is b3's command line, read here (run-argv.ts);
 *                                                    one it does not know (help, a bad flag) goes to the
 *                                                    CLI in this process, which says what is wrong
 *   node src/cli/run-pipeline.ts '{"pipeline":…,"store":…,"cache":…,"json":…,"quiet":…,"verbose":…}' ARGS…
 *                                                    by the CLI's `b3 run` (commands/run.ts)
 *
 * A pipeline outside this package can still import "b3", "b3/derivation", "effect" and
 * "@effect/platform-node": if they do not resolve from where it is, they resolve from here.
 * SIGINT/SIGTERM interrupt the program, so its scopes close and its finalizers run.
 */
import { existsSync, readFileSync } from "node:fs"
import { extname, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { quietSqliteWarning } from "../io/quiet-warnings.ts"
import { shareBundledModules, shareModules } from "../io/shared-modules.ts"
import { parseRunArgv } from "./run-argv.ts"

interface RunOptions {
  readonly pipeline: string
  readonly store: string
  readonly cache?: string
  readonly json: boolean
  readonly quiet: boolean
  readonly verbose: boolean
  readonly plugins?: ReadonlyArray<string>
}

// Run from the library bundle (dist/lib/run-pipeline.mjs), its modules.json lists the modules a
// pipeline shares with it; run from the sources, b3's own package does.
const modulesJson = new URL("./modules.json", import.meta.url)
const bundled = existsSync(fileURLToPath(modulesJson))

/** Before anything imports b3 or Effect: the pipeline and plugins are to get the runner's copies. */
const share = (): void => {
  quietSqliteWarning()
  if (bundled) {
    const relative = JSON.parse(readFileSync(modulesJson, "utf8")) as Record<string, string>
    shareBundledModules(Object.fromEntries(Object.entries(relative).map(([specifier, file]) => [specifier, new URL(file, modulesJson).href])))
  } else shareModules(new URL("../../package.json", import.meta.url).href)
}

const run = async (options: RunOptions, args: ReadonlyArray<string>, missing: string | undefined): Promise<void> => {
  const { Cause, Effect } = await import("effect")
  const NodeRuntime = await import("@effect/platform-node/NodeRuntime")
  const { exitCodeFor, exitTeardown, messageOf } = await import("./exit.ts")
  const { resultText, runPipeline } = await import("../compose/pipeline.ts")
  const { FileNotFound } = await import("../nar/fs/errors.ts")

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

if (process.argv[2] === "--argv") {
  const argv = process.argv.slice(3)
  const invocation = parseRunArgv(argv)
  if (invocation === undefined) {
    // Not a command line this reads: the CLI's (from its bundle beside this one, or the sources) takes it.
    const cli = bundled ? new URL("../b3.mjs", import.meta.url) : new URL(`./main${extname(fileURLToPath(import.meta.url))}`, import.meta.url)
    process.argv = [process.argv[0]!, fileURLToPath(cli), ...argv]
    await import(cli.href)
  } else {
    share()
    // As the CLI's `b3 run` does: the store and plugins from the configuration, unless given.
    const { loadConfig } = await import("./config.ts")
    const config = loadConfig()
    const pipeline = resolve(invocation.pipeline)
    const { cache, json, quiet, verbose } = invocation
    const options = { pipeline, store: invocation.store ?? config.store, ...(cache !== undefined ? { cache } : {}), plugins: config.plugins, json, quiet, verbose }
    await run(options, invocation.args, existsSync(pipeline) ? undefined : invocation.pipeline)
  }
} else {
  share()
  await run(JSON.parse(process.argv[2] ?? "{}") as RunOptions, process.argv.slice(3), undefined)
}
