/** `b3 build` (realise derivations in the sandbox) and `b3 log` (show a build log). */
import { Console, Context, Effect, Option, Result } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Machines from "../../core/machines.ts"
import * as StorePath from "../../core/store-path.ts"
import { readFileSync } from "node:fs"
import { registryWithBuilders } from "../../compose/registry.ts"
import { requireLogs } from "../../services/registry.ts"
import { StoreBuild, type BuildResult } from "../../services/store-build.ts"
import { StoreRead } from "../../services/store-read.ts"
import { StoreWrite } from "../../services/store-write.ts"
import type { BuildEvent } from "../../services/store-build.ts"
import { BadBuildTarget, NoBuildLog, resolveTarget } from "../build-targets.ts"
import { storeFlag, substitutersFlag, switchFlag } from "../flags.ts"
import { outputMode, printJson, rejectJson, UsageError, type OutputMode } from "../output.ts"
import { cliBuildingStore, cliWritableStore, openCliStore } from "../open-store.ts"
import { makeProgress } from "../progress.ts"
import { writeStdout } from "../stdio.ts"
import { parseTrustedKeys, trustedKeysFlag } from "../trust.ts"

/** The machines of a builders setting, `@FILE` lines read in. */
const parseBuilders = (text: string) => Effect.gen(function*() {
  const expand = (t: string, depth: number): string => Machines.machineLines(t).map((line) => {
    if (!line.startsWith("@")) return line
    if (depth > 4) return ""
    try { return expand(readFileSync(line.slice(1).trim(), "utf8"), depth + 1) } catch { return "" }
  }).join("\n")
  return yield* Effect.fromResult(Machines.parseMachines(expand(text, 0), "x86_64-linux"))
})

const optionalInt = (name: string, description: string) => Flag.Int(name).pipe(Flag.optional, Flag.withDescription(description))
const drvName = (drvPath: string) => drvPath.slice(drvPath.indexOf("-") + 1).replace(/\.drv$/, "")

/** A one-line summary of the builds in flight, redrawn on a terminal. */
const buildProgress = (quiet: boolean) => {
  const progress = makeProgress("build", { quiet })
  const running = new Set<string>()
  let total = 0
  let finished = 0
  let failed = 0
  const show = () => {
    const names = [...running].map(drvName)
    progress.update(`${finished}/${total} done${failed ? `, ${failed} failed` : ""}${names.length ? `, running: ${names.slice(0, 4).join(", ")}${names.length > 4 ? ` +${names.length - 4}` : ""}` : ""}`)
  }
  return {
    onEvent: (event: BuildEvent) => {
      if (event.type === "plan") total = event.build.length
      if (event.type === "untrusted-substitute" && !quiet) {
        progress.done()
        process.stderr.write(`warning: the substitute for '${event.path}' from '${event.from}' is not signed by any of the keys in 'trusted-public-keys'\n`)
      }
      if (event.type === "building" || event.type === "substituting") running.add(event.drvPath)
      if (event.type === "resolved" && !quiet) { progress.done(); process.stderr.write(`resolved derivation: '${event.drvPath}' -> '${event.resolved}'\n`) }
      if (event.type === "built" || event.type === "substituted") { running.delete(event.drvPath); finished++ }
      if (event.type === "failed") { running.delete(event.drvPath); failed++ }
      show()
    },
    done: progress.done
  }
}


/** Builder output as lines on stderr, each prefixed with the derivation's name. */
const logPrinter = () => {
  const partial = new Map<string, string>()
  const decoder = new TextDecoder()
  return (drvPath: string, chunk: Uint8Array) => {
    const text = (partial.get(drvPath) ?? "") + decoder.decode(chunk, { stream: true })
    const lines = text.split("\n")
    partial.set(drvPath, lines.pop()!)
    for (const line of lines) process.stderr.write(`${drvName(drvPath)}> ${line}\n`)
  }
}

/** Farm events and logs as the progress line, JSON lines (--json) and prefixed log lines. */
export const farmWatcher = (mode: OutputMode, printLogs = mode.verbose) => {
  const progress = buildProgress(mode.quiet)
  const onLog = logPrinter()
  const encoder = new TextEncoder()
  return {
    options: {
      onPlan: (plan: { submission: string; derivations: ReadonlyArray<string>; finished: ReadonlyArray<string> }) => {
        if (!mode.quiet && !mode.json) process.stderr.write(`farm submission ${plan.submission}: ${plan.derivations.length - plan.finished.length} of ${plan.derivations.length} derivations to realise\n`)
        if (mode.json) process.stdout.write(JSON.stringify({ event: "submitted", submission: plan.submission, derivations: plan.derivations.length, finished: plan.finished.length }) + "\n")
        progress.onEvent({ type: "plan", build: plan.derivations.filter((d) => !plan.finished.includes(d)), valid: plan.finished })
      },
      onEvent: (event: { type: string; drvPath: string; runner: string | null; message: string | null; at: number }) => {
        if (mode.json) process.stdout.write(JSON.stringify({ event: event.type, drvPath: event.drvPath, runner: event.runner, message: event.message, at: event.at }) + "\n")
        if (event.type === "building") progress.onEvent({ type: "building", drvPath: event.drvPath })
        if (event.type === "built") progress.onEvent({ type: "built", drvPath: event.drvPath, outputs: {} })
        if (event.type === "cached") progress.onEvent({ type: "substituted", drvPath: event.drvPath, from: "cache" })
        if (event.type === "failed") progress.onEvent({ type: "failed", drvPath: event.drvPath, message: event.message ?? "" })
      },
      ...(printLogs ? { onLog: (drvPath: string, text: string) => onLog(drvPath, encoder.encode(text)) } : {})
    },
    done: () => progress.done()
  }
}

/** Output paths on stdout (or the results as JSON). */
export const printFarmResults = (results: ReadonlyArray<{ drvPath: string; outputs: Readonly<Record<string, string>>; status: string }>) => Effect.gen(function*() {
  if ((yield* outputMode).json) yield* printJson(results)
  else for (const r of results) for (const path of Object.values(r.outputs)) yield* Console.log(path)
})

export const buildCommand = Command.make("build", {
  farm: Flag.String("farm").pipe(Flag.optional, Flag.withDescription("build on a farm instead (its database: postgres://… or sqlite:PATH; see b3 farm --help): the .drv closure goes to the farm's cache, the outputs come back into --store")),
  detach: switchFlag("detach", "with --farm: submit, print the submission id and return (follow it with b3 farm attach)"),
  submission: Flag.String("submission").pipe(Flag.optional, Flag.withDescription("with --farm: the submission's id (default: a new one); submitting again with the same id re-attaches")),
  cache: Flag.String("cache").pipe(Flag.optional, Flag.withDescription("with --farm: the shared cache (default: the one the farm's runners published)")),
  store: storeFlag,
  substituters: substitutersFlag,
  trustedPublicKeys: trustedKeysFlag,
  maxJobs: Flag.Int("max-jobs").pipe(Flag.withDefault(1), Flag.withDescription("builds run at once")),
  keepGoing: switchFlag("keep-going", "after a failure, go on with the builds that do not depend on it"),
  cores: optionalInt("cores", "NIX_BUILD_CORES for each build (default: the number of CPUs)"),
  timeout: optionalInt("timeout", "kill a build that runs longer than this many seconds"),
  maxSilentTime: optionalInt("max-silent-time", "kill a build that prints nothing for this many seconds"),
  printBuildLogs: switchFlag("print-build-logs", "show the builders' output on stderr, each line prefixed with the derivation name (also with --verbose)"),
  systemFeatures: Flag.String("system-features").pipe(Flag.optional,
    Flag.withDescription("space-separated features this machine offers to requiredSystemFeatures (default Nix's: benchmark big-parallel ca-derivations kvm nixos-test)")),
  hashedMirrors: Flag.String("hashed-mirrors").pipe(Flag.withDefault(""),
    Flag.withDescription("space-separated servers builtin:fetchurl asks first for a file by its hash (<mirror>/<algo>/<base16>), as Nix's hashed-mirrors")),
  postBuildHook: Flag.String("post-build-hook").pipe(Flag.withDefault(""), Flag.withDescription(
    "a program run after each derivation is built (not for substituted or valid ones), with DRV_PATH and OUT_PATHS in its environment; its output is shown as 'post-build-hook: …' lines and its failure fails the build (Nix's post-build-hook)")),
  builders: Flag.String("builders").pipe(Flag.withDefault(""), Flag.withDescription(
    "remote machines to build on, in Nix's machines syntax: 'ssh://user@host SYSTEMS KEY MAX-JOBS SPEED FEATURES MANDATORY HOST-KEY; …' or '@FILE' (ssh options from $NIX_SSHOPTS; remote-program=b3%20nix-store for a machine with b3)")),
  targets: Argument.String("target").pipe(Argument.variadic({ min: 1 }),
    Argument.withDescription(".drv store paths, .drv files, or a module (.ts/.js) exporting derivations"))
}, (args) => Option.isSome(args.farm) ? farmBuild(args, args.farm.value) : Effect.flatMap(Effect.all([outputMode, parseBuilders(args.builders)]), ([mode, machines]) => Effect.scoped(Effect.gen(function*() {
  const builder = yield* StoreBuild
  const substituters = yield* Effect.forEach(args.substituters.split(/\s+/).filter((s) => s.length > 0), (uri) =>
    Effect.map(openCliStore(uri), Context.get(StoreRead)))
  const trustedKeys = yield* parseTrustedKeys(args.trustedPublicKeys)
  const progress = buildProgress(mode.quiet)
  const drvPaths = (yield* Effect.forEach(args.targets, (target) => resolveTarget(target, { substituters, trustedKeys, onEvent: progress.onEvent }))).flat()
  const onLog = args.printBuildLogs || mode.verbose ? logPrinter() : undefined
  const storeDir = (yield* StoreRead).storeDir
  const asJson = (r: BuildResult) => ({
    drvPath: StorePath.print(r.drvPath, storeDir),
    outputs: Object.fromEntries(Object.entries(r.outputs).map(([name, path]) => [name, StorePath.print(path, storeDir)])),
    status: r.status
  })
  // What did finish, printed even when something else failed (with --keep-going, most of the graph may have built).
  const finished: Array<BuildResult> = []
  const printResults = (results: ReadonlyArray<BuildResult>) => mode.json
    ? printJson(results.map(asJson))
    : Effect.forEach(results, (r) => Effect.forEach(Object.values(r.outputs), (path) => Console.log(StorePath.print(path, storeDir))), { discard: true })
  const remoteJobs = machines.reduce((n, m) => n + m.maxJobs, 0)
  const results = yield* builder.buildDerivations(drvPaths, {
    maxJobs: Math.max(1, args.maxJobs + remoteJobs), keepGoing: args.keepGoing, cores: Option.getOrUndefined(args.cores), timeoutSeconds: Option.getOrUndefined(args.timeout),
    maxSilentSeconds: Option.getOrUndefined(args.maxSilentTime), substituters, trustedKeys, onEvent: progress.onEvent,
    onResult: (result) => { finished.push(result) },
    systemFeatures: Option.getOrUndefined(Option.map(args.systemFeatures, (s) => s.split(/\s+/).filter((t) => t !== ""))),
    hashedMirrors: args.hashedMirrors.split(/\s+/).filter((t) => t !== ""),
    ...(args.postBuildHook !== "" ? {
      postBuildHook: { program: args.postBuildHook },
      // as Nix's simple logger prints a hook's lines
      onHookLog: (_drvPath: string, line: string) => { progress.done(); process.stderr.write(`post-build-hook: ${line}\n`) }
    } : {}),
    ...(onLog ? { onLog } : {})
  }).pipe(
    Effect.ensuring(Effect.sync(progress.done)),
    Effect.tapError(() => args.keepGoing && finished.length > 0 ? printResults(finished) : Effect.void))
  yield* printResults(results)
})).pipe(Effect.provide(cliBuildingStore(args.store, machines.length > 0
  ? registryWithBuilders({ machines, localJobs: args.maxJobs, ...(args.printBuildLogs || mode.verbose ? { onDispatch: (drv, uri) => process.stderr.write(`building '${drv}' on '${uri}'\n`) } : {}) })
  : undefined))))).pipe(
  Command.withShortDescription("Build derivations (and everything they need) in a sandbox like Nix's, taking what the substituters have; prints the output paths."),
  Command.withDescription("Build derivations (and everything they need) in a sandbox like Nix's, taking what the substituters have; prints the output paths (with --json [{\"drvPath\", \"outputs\", \"status\"}])."),
  Command.withExamples([
    { command: "b3 build --store /tmp/r hello.ts", description: "build the derivations a TypeScript module exports" },
    { command: "b3 build --store /tmp/r --max-jobs 4 --substituters http://127.0.0.1:5000 /nix/store/…-hello.drv", description: "build a .drv, taking what a cache already has" },
    { command: "b3 build --store /tmp/r --post-build-hook ./upload.sh hello.ts", description: "run ./upload.sh after each build, with DRV_PATH and OUT_PATHS set (e.g. to copy the outputs to a cache)" }
  ]))

/** `b3 build --farm`: the targets are added to the local store, built on the farm, and their outputs copied back. */
const farmBuild = (args: {
  readonly store: string
  readonly cache: Option.Option<string>
  readonly trustedPublicKeys: string
  readonly detach: boolean
  readonly submission: Option.Option<string>
  readonly printBuildLogs: boolean
  readonly targets: ReadonlyArray<string>
  readonly postBuildHook: string
}, farmUrl: string) => Effect.scoped(Effect.gen(function*() {
  // the runners build on other machines: there is nowhere here to run a hook after each build
  if (args.postBuildHook !== "") return yield* new UsageError({ reason: "--post-build-hook does not work with --farm (the runners build elsewhere; copy the outputs after b3 build returns instead)" })
  const mode = yield* outputMode
  const farm = yield* Effect.promise(() => import("../../farm/cli-support.ts"))
  const trustedKeys = yield* parseTrustedKeys(args.trustedPublicKeys)
  const drvPaths = (yield* Effect.forEach(args.targets, (target) => resolveTarget(target))).flat()
  const watcher = farmWatcher(mode, args.printBuildLogs || mode.verbose)
  const { submission, results } = yield* farm.runSubmit(
    { farm: farmUrl, store: args.store, cache: Option.getOrUndefined(args.cache), trustedKeys },
    { read: yield* StoreRead, write: yield* StoreWrite }, drvPaths,
    { detach: args.detach, submission: Option.getOrUndefined(args.submission), ...watcher.options }
  ).pipe(Effect.ensuring(Effect.sync(watcher.done)))
  if (args.detach) {
    if (mode.json) yield* printJson({ submission })
    else yield* Console.log(submission)
    return
  }
  yield* printFarmResults(results)
})).pipe(Effect.provide(cliWritableStore(args.store)))

export const logCommand = Command.make("log", {
  store: storeFlag,
  path: Argument.String("path").pipe(Argument.withDescription("a .drv path, or an output path (its deriver's log is shown)"))
}, (args) => Effect.scoped(Effect.gen(function*() {
  yield* rejectJson("b3 log", "a build log")
  const store = yield* openCliStore(args.store)
  const read = Context.get(store, StoreRead)
  const storeDir = read.storeDir
  const parsed = StorePath.parse(args.path, storeDir)
  if (Result.isFailure(parsed)) return yield* parsed.failure
  let drvPath = args.path
  if (!parsed.success.name.endsWith(".drv")) {
    const info = yield* read.queryPathInfo(parsed.success)
    if (!info.deriver) return yield* new NoBuildLog({ drvPath: args.path, reason: "the path has no known deriver: it was added, not built" })
    drvPath = StorePath.print(info.deriver, storeDir)
  }
  const log = yield* (yield* requireLogs(store)).readLog(drvPath)
  if (Option.isNone(log)) return yield* new NoBuildLog({ drvPath })
  yield* writeStdout(log.value)
}))).pipe(
  Command.withDescription("Show the build log of a derivation (or of the derivation that built a path)."),
  Command.withExamples([{ command: "b3 log --store /tmp/r /nix/store/…-hello", description: "the log of the build that made a path" }]))
