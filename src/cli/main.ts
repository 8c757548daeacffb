/** The b3 command line: one root command, a file per command group under ./commands. */
import { Cause, Console, Effect, Layer } from "effect"
import { CliOutput, Command } from "effect/cli"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { startupSnapshot } from "node:v8"
import { buildCommand, logCommand } from "./commands/build.ts"
import { configCommand } from "./commands/config.ts"
import { copyCommand } from "./commands/copy.ts"
import { daemonCommand } from "./commands/daemon.ts"
import { nixStoreCommand } from "./commands/nix-store.ts"
import { drvCommand } from "./commands/drv.ts"
import { farmCommand } from "./commands/farm.ts"
import { hashCommand } from "./commands/hash.ts"
import { keyCommand } from "./commands/key.ts"
import { narCommand } from "./commands/nar.ts"
import { narinfoCommand } from "./commands/narinfo.ts"
import { pathInfoCommand } from "./commands/path-info.ts"
import { serveCommand } from "./commands/serve.ts"
import { uiCommand } from "./commands/ui.ts"
import { storeCommand } from "./commands/store.ts"
import { runCommand } from "./commands/run.ts"
import { storePathCommand } from "./commands/store-path.ts"
import { ExitCode, exitCodeFor, exitTeardown, messageOf } from "./exit.ts"
import { outputFlags, UsageError } from "./output.ts"
import { config } from "./config.ts"
import { quietSqliteWarning } from "../io/quiet-warnings.ts"
import { installHint, knownPlugins, loadPlugin, type PluginError } from "../compose/plugins.ts"

const commands = [hashCommand, storePathCommand, narCommand, storeCommand, pathInfoCommand, copyCommand, serveCommand, uiCommand, buildCommand, logCommand, runCommand, drvCommand, keyCommand, narinfoCommand, configCommand, daemonCommand, nixStoreCommand, farmCommand]

/** The root command, with commands from plugins (see pluginCommands) after the built-in ones. */
const makeB3 = (fromPlugins: ReadonlyArray<Command.Command<string, any, any, any>>) => Command.make("b3").pipe(
  Command.withDescription("b3: a Nix-compatible store and build engine."),
  Command.withSubcommands([...commands, ...fromPlugins]),
  Command.withGlobalFlags(outputFlags),
  Command.withExamples([
    { command: "b3 store add --store /tmp/r ./src", description: "add a tree to a chroot store" },
    { command: "b3 --json path-info --store /tmp/r /nix/store/…-src", description: "machine-readable output from any command" },
    { command: "b3 --completions bash >> ~/.bashrc", description: "shell completion (bash, zsh, fish)" }
  ])
)

export const b3 = makeB3([])

/**
 * The commands of the plugin that provides the command this command line names (`b3 ipfs …` is in
 * @b3/ipfs; configured plugins are asked too), loaded only then: other commands start without them.
 */
const pluginCommands = (argv: ReadonlyArray<string>) => Effect.gen(function*() {
  const name = argv.find((a) => !a.startsWith("-"))
  if (name === undefined || commands.some((c) => c.name === name)) return []
  const known = knownPlugins.find((p) => p.commands.includes(name))
  const names = [...(known ? [known.name] : []), ...config().plugins.filter((p) => p !== known?.name)]
  if (names.length === 0) return []
  const plugins = yield* Effect.forEach(names, (plugin) => Effect.tryPromise({
    try: () => loadPlugin(plugin),
    catch: (error) => plugin === known?.name && (error as PluginError).missing
      ? new UsageError({ reason: `'b3 ${name}' is in the ${plugin} plugin, which is not installed: ${installHint(plugin)}` })
      : error as PluginError
  }))
  return plugins.flatMap((p) => (p.commands ?? []) as ReadonlyArray<Command.Command<string, any, any, any>>)
})

export { version } from "./version.ts"
import { version } from "./version.ts"

/** Help and version go to stdout; a bad invocation is one line per problem on stderr, not the whole help page. */
const presenter = CliOutput.layerPresenter({
  present: (event) => {
    if (event._tag !== "InvalidInvocation") return CliOutput.defaultPresenter.present(event)
    const command = event.commandPath.join(" ")
    return Effect.forEach(event.errors, (error) =>
      Console.error(`b3: ${messageOf(error)} (see '${command} --help')`), { discard: true })
  }
})

/**
 * bin/b3 gives some commands glibc malloc settings (MALLOC_ARENA_MAX, MALLOC_TRIM_THRESHOLD_: read
 * when the process started) and names them in B3_MALLOC_SET; they are taken out of the environment
 * again so that the processes b3 starts (hooks, ssh, helpers) run with what b3 was given.
 */
const forgetLauncherMalloc = () => {
  const set = process.env.B3_MALLOC_SET
  if (set === undefined) return
  for (const name of set.split(" ")) if (name.startsWith("MALLOC_")) delete process.env[name]
  delete process.env.B3_MALLOC_SET
}

/**
 * Runs the CLI on this process's arguments. A function, not module-level code, so that the V8 startup
 * snapshot (snapshot-entry.ts) can load this module when it is built and run the CLI when it starts.
 */
export const main = (): void => {
  quietSqliteWarning()
  forgetLauncherMalloc()
  const argv = process.argv.slice(2)
  /** Read here too: the failure of an invocation is reported outside its handler, where the setting is not provided. */
  const verbose = argv.slice(0, argv.includes("--") ? argv.indexOf("--") : argv.length).includes("--verbose")

  const program = pluginCommands(argv).pipe(
    Effect.flatMap((fromPlugins) => Command.runWith(fromPlugins.length > 0 ? makeB3(fromPlugins) : b3, { version })(argv)),
    Effect.catchCause((cause) => Effect.sync(() => {
      if (Cause.hasInterruptsOnly(cause)) {
        // Every write is atomic (a path is valid whole or not at all) and every scope has closed: say so
        // (servers are stopped this way as a matter of course: nothing to say for them).
        const command = argv.filter((a) => !a.startsWith("-"))
        if (process.exitCode === undefined && !["serve", "daemon", "ui"].includes(command[0] ?? "")) process.stderr.write(`b3: interrupted (b3 ${command.slice(0, 2).join(" ")}): what was complete is kept, nothing partial was\n`)
        process.exitCode ??= 130
        return
      }
      const error = Cause.squash(cause)
      const tag = (error as { _tag?: string })?._tag ?? ""
      if (tag === "ShowHelp") {
        // Parse problems were already printed by the presenter; plain `b3 group` (help) is not an error.
        process.exitCode = (error as { errors: ReadonlyArray<unknown> }).errors.length > 0 ? ExitCode.badInput : ExitCode.ok
        return
      }
      process.stderr.write(`b3: ${messageOf(error)}\n`)
      if (verbose && Cause.hasDies(cause)) process.stderr.write(Cause.pretty(cause) + "\n")
      process.exitCode = exitCodeFor(error)
    })),
    Effect.provide(Layer.mergeAll(NodeServices.layer, presenter))
  )

  NodeRuntime.runMain(program, { disableErrorReporting: true, teardown: exitTeardown })
}

// Run as a program (dist/b3.mjs), not while a snapshot is being built from this module.
if (!startupSnapshot.isBuildingSnapshot()) main()
