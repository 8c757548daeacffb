/**
 * `b3 copy`: copy paths between any two stores (like `nix copy`). A derivation's outputs are
 * named as Nix 2.8 names them, `DRV!out,dev` or `DRV!*`: their realisations are copied too (with
 * the realisations they depend on), so a cache can serve content-addressed derivation outputs.
 */
import { Console, Context, Effect, Option } from "effect"
import * as Realisation from "../../core/realisation.ts"
import { staticOutputHashes } from "../../build/derivation-graph.ts"
import { BuildFailed } from "../../services/store-build.ts"
import { queryRealisation, realisationClosure, registerRealisation } from "../../services/realisations.ts"
import { StoreRead } from "../../services/store-read.ts"
import { Argument, Command, Flag } from "effect/cli"
import * as StorePath from "../../core/store-path.ts"
import { copyPaths, type CopyEvent } from "../../services/copy.ts"
import { requireWrite } from "../../services/registry.ts"
import { configDefault } from "../config.ts"
import { fromResult } from "../effect-result.ts"
import { switchFlag } from "../flags.ts"
import { outputMode, printJson } from "../output.ts"
import { openCliStore } from "../open-store.ts"
import { makeProgress, mib, rate } from "../progress.ts"
import { parseTrustedKeys, readSecretKey, trustedKeysFlag } from "../trust.ts"

export const copyCommand = Command.make("copy", {
  from: Flag.String("from").pipe(Flag.withDefault(configDefault((c) => c.store)), Flag.withDescription("source store URI (default: the configured store)")),
  to: Flag.String("to").pipe(Flag.withDescription("target store URI")),
  closure: switchFlag("closure", "copy everything the paths refer to as well"),
  jobs: Flag.Int("jobs").pipe(Flag.withDefault(16), Flag.withDescription("paths copied at once")),
  noCheckSigs: switchFlag("no-check-sigs", "accept paths without a trusted signature (checked only where the target requires them: local stores, as in Nix)"),
  trustedPublicKeys: trustedKeysFlag,
  secretKey: Flag.String("secret-key").pipe(Flag.optional, Flag.withDescription("sign the copied paths with this secret key file")),
  paths: Argument.String("path").pipe(Argument.variadic({ min: 1 }), Argument.withDescription("store paths to copy, or derivation outputs DRV!out,dev / DRV!* (with their realisations)"))
}, (args) => Effect.scoped(Effect.gen(function*() {
  const mode = yield* outputMode
  const from = Context.get(yield* openCliStore(args.from), StoreRead)
  const to = yield* openCliStore(args.to)
  const target = { read: Context.get(to, StoreRead), write: yield* requireWrite(to) }
  const paths: Array<StorePath.StorePath> = []
  const realisations: Array<Realisation.Realisation> = []
  for (const arg of args.paths) {
    const bang = arg.indexOf("!")
    if (bang < 0) { paths.push(yield* fromResult(StorePath.parse(arg, from.storeDir))); continue }
    // A derivation's outputs: their realisations in the source store.
    const drvPath = yield* fromResult(StorePath.parse(arg.slice(0, bang), from.storeDir))
    const hashes = yield* staticOutputHashes(drvPath).pipe(Effect.provideService(StoreRead, from))
    const wanted = arg.slice(bang + 1) === "*" ? [...hashes.keys()] : arg.slice(bang + 1).split(",")
    for (const name of wanted) {
      const drvHash = hashes.get(name)
      const printed = StorePath.print(drvPath, from.storeDir)
      if (drvHash === undefined) return yield* new BuildFailed({ drvPath: printed, reason: `derivation '${printed}' has no output '${name}'`, logTail: "" })
      const r = yield* queryRealisation(from, { drvHash, outputName: name })
      if (Option.isNone(r)) return yield* new BuildFailed({ drvPath: printed, reason: `output '${name}' of derivation '${printed}' has not been realised in ${from.uri}`, logTail: "" })
      realisations.push(r.value)
    }
  }
  const realisationsToCopy = yield* realisationClosure(from, realisations)
  paths.push(...realisationsToCopy.map((r) => r.outPath))
  const trustedKeys = yield* parseTrustedKeys(args.trustedPublicKeys)
  const signWith = args.secretKey._tag === "Some" ? [yield* readSecretKey(args.secretKey.value)] : []
  const progress = makeProgress("copy", mode)
  let total = 0
  let done = 0
  let bytes = 0
  let bytesDone = 0
  const started = Date.now()
  const onEvent = (event: CopyEvent) => {
    if (mode.json) { process.stdout.write(JSON.stringify(event) + "\n"); return }
    if (event.type === "plan") { total = event.total; bytes = event.bytes }
    if (mode.verbose && event.type === "start") process.stderr.write(`copying ${event.path} (${mib(event.narSize)})\n`)
    if (event.type === "done") { done++; bytesDone += event.narSize }
    progress.update(`${done}/${total} paths, ${mib(bytesDone)}/${mib(bytes)}, ${rate(bytesDone, started)}`)
  }
  const result = yield* copyPaths(from, target, paths, {
    // A realisation's output needs its whole closure in the target.
    closure: args.closure || realisationsToCopy.length > 0, concurrency: args.jobs,
    checkSigs: !args.noCheckSigs && (target.write.requiresSignatures ?? false), trustedKeys, signWith, onEvent
  })
  for (const r of realisationsToCopy) yield* registerRealisation(target, signWith.reduce((acc, key) => Realisation.sign(acc, key), r))
  progress.done()
  if (mode.json) {
    yield* printJson({
      type: "result",
      copied: result.copied.map((p) => StorePath.print(p, from.storeDir)),
      skipped: result.skipped.map((p) => StorePath.print(p, from.storeDir))
    })
  } else if (!mode.quiet) {
    yield* Console.error(`copied ${result.copied.length} path(s), ${result.skipped.length} already present`)
  }
}))).pipe(
  Command.withShortDescription("Copy store paths (and with --closure everything they need) from one store to another, checking hashes and signatures."),
  Command.withDescription("Copy store paths (and with --closure everything they need) from one store to another, checking hashes and signatures. With --json, one event per line ({\"type\": \"plan\"|\"start\"|\"done\"}) and a final {\"type\": \"result\", \"copied\", \"skipped\"}."),
  Command.withExamples([
    { command: "b3 copy --from /tmp/r --to 'file:///srv/cache?compression=xz&secret-key=key.sec' --closure /nix/store/…-hello", description: "push a closure to a signed file cache" },
    { command: "b3 copy --from http://127.0.0.1:5000 --to /tmp/fresh --closure --trusted-public-keys \"$(cat key.pub)\" /nix/store/…-hello", description: "pull it back, checking signatures" }
  ]))
