/**
 * `b3 run PIPELINE.ts`: runs a pipeline (an Effect program needing store services, see
 * ../pipeline.ts) in a child process on this Node with b3's unbundled modules (../run-pipeline.ts:
 * the sources in a checkout, lib/ in the npm package), so the pipeline and its services share one
 * copy of `effect` and of b3.
 * stdin/stdout/stderr are the child's; its exit code is b3's. Interrupting b3 interrupts the
 * pipeline (its finalizers run) and waits for it to end.
 *
 * The launchers (bin/b3, bin/b3.cjs) start the runner themselves for the usual command lines of
 * `b3 run` (../run-argv.ts), without this process in front; this command runs the rest (and shows
 * `b3 run --help`).
 */
import { Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { spawn } from "node:child_process" // loaded at start-up anyway (NodeServices spawns processes)
import { existsSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { constants } from "node:os"
import { fileURLToPath } from "node:url"
import { FileNotFound } from "../../nar/fs/errors.ts"
import { config } from "../config.ts"
import { storeFlag } from "../flags.ts"
import { outputMode } from "../output.ts"

/**
 * The pipeline runner, found from wherever this code runs (a bundle in dist/ or dist/npm/, or src/):
 * the TypeScript source in a checkout (run with the `b3-source` condition, so that `b3` and the
 * plugins resolve to their sources too), the compiled lib/cli/run-pipeline.js in an installed package.
 */
const runner = (): { readonly path: string; readonly execArgv: ReadonlyArray<string> } | undefined => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    // beside the CLI bundle (dist/, dist/npm/): the library bundle, which starts in a fraction of the time
    const bundled = join(dir, "lib", "run-pipeline.mjs")
    if (existsSync(bundled)) return { path: bundled, execArgv: existsSync(join(dir, "..", "src")) ? ["--conditions=b3-source"] : [] }
    const source = join(dir, "src", "cli", "run-pipeline.ts")
    if (existsSync(source)) return { path: source, execArgv: ["--conditions=b3-source"] }
    const compiled = join(dir, "lib", "cli", "run-pipeline.js")
    if (existsSync(compiled)) return { path: compiled, execArgv: [] }
    if (dirname(dir) === dir) return undefined
  }
}

/** Runs the child to completion; interrupting this effect sends it SIGINT and waits for it to exit. */
const runChild = (argv: ReadonlyArray<string>) => Effect.callback<number>((resume) => {
  const child = spawn(process.execPath, argv, { stdio: "inherit" })
  let exited = false
  const exitCode = (code: number | null, signal: NodeJS.Signals | null) => code ?? 128 + (signal ? constants.signals[signal] : 0)
  child.once("error", (error) => {
    exited = true
    process.stderr.write(`b3: cannot start the pipeline runner: ${error.message}\n`)
    resume(Effect.succeed(1))
  })
  child.once("exit", (code, signal) => { exited = true; resume(Effect.succeed(exitCode(code, signal))) })
  return Effect.callback<void>((done) => {
    if (exited) return done(Effect.void)
    child.once("exit", (code, signal) => { process.exitCode = exitCode(code, signal); done(Effect.void) })
    child.kill("SIGINT")
  })
})

export const runCommand = Command.make("run", {
  store: storeFlag,
  cache: Flag.String("cache").pipe(Flag.optional, Flag.withDescription("a second store URI the pipeline gets as the Cache service, e.g. file:///srv/cache")),
  pipeline: Argument.String("pipeline").pipe(Argument.withDescription("a .ts/.js module whose default export is an Effect program")),
  args: Argument.String("arg").pipe(Argument.variadic({ min: 0 }), Argument.withDescription("arguments for the pipeline (after --)"))
}, (args) => Effect.gen(function*() {
  const pipeline = resolve(args.pipeline)
  if (!existsSync(pipeline)) return yield* new FileNotFound({ path: args.pipeline })
  const found = runner()
  if (!found) return yield* new FileNotFound({ path: "lib/cli/run-pipeline.js (b3's pipeline runner; reinstall b3)" })
  const mode = yield* outputMode
  const options = { pipeline, store: args.store, ...(args.cache._tag === "Some" ? { cache: args.cache.value } : {}), plugins: config().plugins, ...mode }
  const code = yield* runChild([...found.execArgv, found.path, JSON.stringify(options), ...args.args])
  process.exitCode = code
})).pipe(
  Command.withShortDescription("Run a pipeline: a TypeScript module whose default export is an Effect program using b3's store services."),
  Command.withDescription("Run a pipeline: a TypeScript module whose default export is an Effect program using StoreRead/StoreWrite/StoreBuild (the --store store) and Cache (the --cache store). Its result is printed (as JSON with --json); a failure exits with the code of its error."),
  Command.withExamples([
    { command: "b3 run examples/push-to-cache.ts --store /tmp/r --cache file:///tmp/cache -- /nix/store/…-hello", description: "push a path's closure from a store to a file cache" },
    { command: "b3 run --json pipeline.ts --store memory://", description: "print the pipeline's result as JSON" }
  ])
)
