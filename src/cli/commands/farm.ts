/** `b3 farm runner|status|attach`: a build farm on Effect Cluster (see src/farm). */
import { Console, Effect, Option, Result } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { cpus, hostname } from "node:os"
import * as Signature from "../../core/signature.ts"
import { storeFlag } from "../flags.ts"
import { outputMode, printJson } from "../output.ts"
import { parseTrustedKeys, readSecretKey, trustedKeysFlag } from "../trust.ts"
import { BadBuildTarget } from "../build-targets.ts"

const loadFarm = Effect.promise(() => import("../../farm/cli-support.ts"))

export const farmFlag = Flag.String("farm").pipe(Flag.withDescription("the farm's database: postgres://USER@HOST:PORT/DB, or sqlite:PATH for a farm on one machine"))
const cacheFlag = Flag.String("cache").pipe(Flag.optional, Flag.withDescription("the shared cache's store URI (default: the one the runners published)"))

const list = (text: string) => text.split(/[\s,]+/).filter((s) => s.length > 0)

const parseListen = (text: string) => {
  const m = /^(.*):(\d+)$/.exec(text)
  return m ? Result.succeed({ host: m[1]!, port: Number(m[2]) }) : Result.fail(new BadBuildTarget({ target: text, reason: "--listen must be HOST:PORT" }))
}

const runnerCommand = Command.make("runner", {
  farm: farmFlag,
  cache: Flag.String("cache").pipe(Flag.withDescription("the shared cache (s3://…, http://…, file://…) where inputs come from and outputs go")),
  store: storeFlag,
  listen: Flag.String("listen").pipe(Flag.withDescription("HOST:PORT this runner listens on for the other cluster members (an address they can reach)")),
  systems: Flag.String("systems").pipe(Flag.withDefault("x86_64-linux"), Flag.withDescription("comma-separated systems it builds for")),
  features: Flag.String("features").pipe(Flag.withDefault(""), Flag.withDescription("comma-separated system features it offers (kvm, big-parallel, …)")),
  maxJobs: Flag.Int("max-jobs").pipe(Flag.withDefault(1), Flag.withDescription("builds it runs at once")),
  cores: Flag.Int("cores").pipe(Flag.optional, Flag.withDescription("NIX_BUILD_CORES for each build (default: CPUs / max-jobs)")),
  secretKey: Flag.String("secret-key").pipe(Flag.optional, Flag.withDescription("the farm's signing key file: outputs pushed to the cache are signed with it")),
  trustedPublicKeys: trustedKeysFlag,
  id: Flag.String("id").pipe(Flag.optional, Flag.withDescription("this runner's name (default: HOST:PORT)")),
  lease: Flag.Int("lease").pipe(Flag.withDefault(10), Flag.withDescription("seconds a build stays claimed without a heartbeat before another runner takes it over (with PostgreSQL a dead runner's builds are taken over at once, a live one's only after 5 minutes without renewal)")),
  reconcile: Flag.Int("reconcile").pipe(Flag.withDefault(30), Flag.withDescription("seconds a finished build's workflow may take to record it before its wake-up is sent again"))
}, (args) => Effect.gen(function*() {
  const farm = yield* loadFarm
  const listen = yield* Effect.fromResult(parseListen(args.listen))
  const secretKey = Option.isSome(args.secretKey) ? yield* readSecretKey(args.secretKey.value) : undefined
  const maxJobs = Math.max(1, args.maxJobs)
  const mode = yield* outputMode
  yield* farm.runRunner({
    farm: args.farm, cache: args.cache, store: args.store, host: listen.host, port: listen.port,
    id: Option.getOrElse(args.id, () => `${listen.host === "0.0.0.0" ? hostname() : listen.host}:${listen.port}`),
    systems: list(args.systems), features: list(args.features), maxJobs,
    cores: Option.getOrElse(args.cores, () => Math.max(1, Math.floor(cpus().length / maxJobs))),
    secretKey, trustedKeys: yield* parseTrustedKeys(args.trustedPublicKeys), leaseMs: Math.max(1, args.lease) * 1000,
    reconcileMs: Math.max(1, args.reconcile) * 1000,
    log: mode.quiet ? undefined : (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`)
  })
})).pipe(
  Command.withDescription("Join a build farm as a runner: host derivation workflows and build jobs from the queue (until Ctrl-C/SIGTERM, which hands running jobs back)."),
  Command.withExamples([{
    command: "b3 farm runner --farm postgres://b3@db:5432/farm --cache 's3://nixcache?region=eu-west-1' --store local?root=/var/b3 --listen 10.0.0.5:7400 --max-jobs 4 --features kvm,big-parallel --secret-key farm.sec",
    description: "a runner offering kvm and big-parallel, 4 builds at once"
  }]))

const statusCommand = Command.make("status", { farm: farmFlag }, (args) => Effect.gen(function*() {
  const farm = yield* loadFarm
  const status = yield* farm.runStatus(args.farm)
  if ((yield* outputMode).json) yield* printJson(status)
  else yield* Console.log(farm.formatStatus(status))
})).pipe(
  Command.withDescription("Show the farm's runners, queue, running and failed builds (--json for scripts)."),
  Command.withExamples([{ command: "b3 farm status --farm postgres://b3@db:5432/farm", description: "what the farm is doing" }]))

const attachCommand = Command.make("attach", {
  farm: farmFlag,
  store: storeFlag,
  cache: cacheFlag,
  trustedPublicKeys: trustedKeysFlag,
  submission: Argument.String("submission").pipe(Argument.withDescription("the id `b3 build --farm` printed (or was given with --submission)"))
}, (args) => Effect.gen(function*() {
  const farm = yield* loadFarm
  const build = yield* Effect.promise(() => import("./build.ts"))
  const mode = yield* outputMode
  const watcher = build.farmWatcher(mode)
  const { results } = yield* farm.runAttach({
    farm: args.farm, store: args.store, cache: Option.getOrUndefined(args.cache), trustedKeys: yield* parseTrustedKeys(args.trustedPublicKeys)
  }, args.submission, watcher.options).pipe(Effect.ensuring(Effect.sync(watcher.done)))
  yield* build.printFarmResults(results)
})).pipe(
  Command.withDescription("Re-attach to a farm submission: show its progress until it ends, then copy its outputs into the store."),
  Command.withExamples([{ command: "b3 farm attach --farm postgres://b3@db/farm --store /tmp/r sub-1a2b3c", description: "follow a detached build" }]))

export const farmCommand = Command.make("farm").pipe(
  Command.withDescription("A build farm: runners (Effect Cluster members) that share a binary cache and a PostgreSQL database."),
  Command.withSubcommands([runnerCommand, statusCommand, attachCommand]),
  Command.withExamples([
    { command: "b3 farm status --farm postgres://b3@db:5432/farm", description: "runners, queue, builds" },
    { command: "b3 build --farm postgres://b3@db:5432/farm --store /tmp/r hello.ts", description: "build on the farm (see b3 build --help)" }
  ]))

export type { Signature }
