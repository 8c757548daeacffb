/**
 * The process `b3 run` starts for a pipeline: it runs from b3's unbundled modules (the sources in a
 * checkout, lib/ compiled from them in the npm package), so the pipeline's `import … from "b3"` and
 * `"effect"` are the very modules its services and errors come from (the CLI bundle has its own copy
 * of both; errors from one copy are not `instanceof` the other's classes).
 *
 *   node src/cli/run-pipeline.ts '{"pipeline":…,"store":…,"cache":…,"json":…,"quiet":…,"verbose":…}' ARGS…
 *
 * A pipeline outside this package can still import "b3", "b3/derivation", "effect" and
 * "@effect/platform-node": if they do not resolve from where it is, they resolve from here.
 * SIGINT/SIGTERM interrupt the program, so its scopes close and its finalizers run.
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { quietSqliteWarning } from "../io/quiet-warnings.ts"
import { shareBundledModules, shareModules } from "../io/shared-modules.ts"

quietSqliteWarning()
// Run from the library bundle (dist/lib/run-pipeline.mjs, scripts/bundle-lib.ts), its modules.json
// lists the modules a pipeline shares with it; run from the sources, b3's own package does.
const modulesJson = new URL("./modules.json", import.meta.url)
if (existsSync(fileURLToPath(modulesJson))) {
  const relative = JSON.parse(readFileSync(modulesJson, "utf8")) as Record<string, string>
  shareBundledModules(Object.fromEntries(Object.entries(relative).map(([specifier, file]) => [specifier, new URL(file, modulesJson).href])))
} else shareModules(new URL("../../package.json", import.meta.url).href)

const { Cause, Effect } = await import("effect")
const NodeRuntime = await import("@effect/platform-node/NodeRuntime")
const { exitCodeFor, exitTeardown, messageOf } = await import("./exit.ts")
const { resultText, runPipeline } = await import("../compose/pipeline.ts")

interface RunOptions {
  readonly pipeline: string
  readonly store: string
  readonly cache?: string
  readonly json: boolean
  readonly quiet: boolean
  readonly verbose: boolean
  readonly plugins?: ReadonlyArray<string>
}

const options = JSON.parse(process.argv[2] ?? "{}") as RunOptions
const args = process.argv.slice(3)
// The pipeline sees its own arguments as a script would: process.argv = [node, PIPELINE, ARGS…].
process.argv = [process.argv[0]!, options.pipeline, ...args]
if (options.quiet) process.env.B3_QUIET = "1"

const program = runPipeline({ ...options, args }).pipe(
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
