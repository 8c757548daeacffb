/** `b3 path-info`: what a store knows about paths (like `nix path-info`). */
import { Console, Effect } from "effect"
import { Argument, Command } from "effect/cli"
import * as StorePath from "../../core/store-path.ts"
import { computeClosure } from "../../services/closure.ts"
import { toJson, type PathInfo } from "../../core/path-info.ts"
import { storeFlag, switchFlag } from "../flags.ts"
import { outputMode, printJson } from "../output.ts"
import { fromResult } from "../effect-result.ts"
import { cliStore } from "../open-store.ts"
import { StoreRead } from "../../services/store-read.ts"

const formatSize = (n: number) => String(n).padStart(12)

export const pathInfoCommand = Command.make("path-info", {
  store: storeFlag,
  closure: switchFlag("closure", "include everything the paths refer to, recursively (nix path-info -r)"),
  size: switchFlag("size", "print the NAR size of each path (nix path-info -s)"),
  closureSize: switchFlag("closure-size", "print the total NAR size of each path's closure (nix path-info -S)"),
  paths: Argument.String("path").pipe(Argument.variadic({ min: 1 }), Argument.withDescription("store paths"))
}, (args) => Effect.gen(function*() {
  const store = yield* StoreRead
  const storeDir = store.storeDir
  const roots = yield* Effect.forEach(args.paths, (p) => fromResult(StorePath.parse(p, storeDir)))
  // sorted and deduplicated, as `nix path-info` prints them
  const paths = args.closure ? yield* computeClosure(roots)
    : [...new Map(roots.map((p) => [StorePath.baseName(p), p])).values()].sort(StorePath.compare)
  const infos = yield* Effect.forEach(paths, (p) => store.queryPathInfo(p), { concurrency: 16 })
  const closureSizeOf = (info: PathInfo) => args.closureSize
    ? Effect.flatMap(computeClosure([info.path]), (closure) =>
      Effect.map(Effect.forEach(closure, (p) => store.queryPathInfo(p), { concurrency: 16 }),
        (members) => members.reduce((sum, m) => sum + m.narSize, 0)))
    : Effect.succeed(undefined)
  if ((yield* outputMode).json) {
    const entries = yield* Effect.forEach(infos, (info) => Effect.map(closureSizeOf(info), (cs) => toJson(info, storeDir, cs)))
    yield* printJson(entries)
    return
  }
  for (const info of infos) {
    const cs = yield* closureSizeOf(info)
    let line = StorePath.print(info.path, storeDir)
    if (args.size) line += `\t${formatSize(info.narSize)}`
    if (cs !== undefined) line += `\t${formatSize(cs)}`
    yield* Console.log(line)
  }
}).pipe(Effect.provide(cliStore(args.store)))).pipe(
  Command.withDescription("Show the NAR hash, size, references and signatures of store paths (like `nix path-info`)."),
  Command.withExamples([
    { command: "b3 path-info --closure --size --store /tmp/r /nix/store/…-hello", description: "a path's closure with NAR sizes" },
    { command: "b3 path-info --json --store https://cache.nixos.org /nix/store/…-hello", description: "narHash, narSize, references, signatures as JSON" }
  ]))

