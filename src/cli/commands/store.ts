/** `b3 store add|add-fixed|verify|gc`: working with a store's contents. */
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { resolve } from "node:path"
import * as Hash from "../../core/hash.ts"
import * as StorePath from "../../core/store-path.ts"
import { jsonFlag, storeFlag, switchFlag } from "../flags.ts"
import { openCliStore, openWritableStore } from "../open-store.ts"
import { makeProgress } from "../progress.ts"
import { requireMaintenance } from "../../services/registry.ts"
import { StoreCorrupt } from "../../services/errors.ts"

const pathsArg = Argument.String("path").pipe(Argument.variadic({ min: 1 }), Argument.withDescription("file system paths to add"))

const add = Command.make("add", { store: storeFlag, json: jsonFlag, paths: pathsArg }, (args) =>
  Effect.scoped(Effect.gen(function*() {
    const { store, write } = yield* openWritableStore(args.store)
    for (const path of args.paths) {
      const info = yield* write.addPath(resolve(path))
      const printed = StorePath.print(info.path, store.read.storeDir)
      yield* Console.log(args.json ? JSON.stringify({ path: printed, narHash: Hash.print(info.narHash, "sri"), narSize: info.narSize }) : printed)
    }
  }))
).pipe(Command.withDescription("Add files or trees to the store and print their store paths (like `nix-store --add`)."))

const addFixed = Command.make("add-fixed", {
  store: storeFlag,
  json: jsonFlag,
  recursive: switchFlag("recursive", "hash the NAR serialisation (a tree) instead of a single file's bytes"),
  type: Flag.Literals("type", Hash.hashAlgorithms).pipe(Flag.withDefault("sha256" as const), Flag.withDescription("hash algorithm")),
  paths: pathsArg
}, (args) => Effect.scoped(Effect.gen(function*() {
  const { store, write } = yield* openWritableStore(args.store)
  for (const path of args.paths) {
    const info = yield* write.addPath(resolve(path), { method: args.recursive ? "recursive" : "flat", algorithm: args.type })
    const printed = StorePath.print(info.path, store.read.storeDir)
    yield* Console.log(args.json ? JSON.stringify({ path: printed, narHash: Hash.print(info.narHash, "sri"), narSize: info.narSize }) : printed)
  }
}))).pipe(Command.withDescription("Add files as fixed-output paths (like `nix-store --add-fixed [--recursive] ALGO`)."))

const verify = Command.make("verify", { store: storeFlag, json: jsonFlag }, (args) =>
  Effect.scoped(Effect.gen(function*() {
    const store = yield* openCliStore(args.store)
    const maintenance = yield* requireMaintenance(store, "verifying contents")
    const progress = makeProgress("verify")
    const report = yield* maintenance.verify({ onProgress: (done, total) => progress.update(`${done}/${total} paths`) })
    progress.done()
    if (args.json) yield* Console.log(JSON.stringify(report))
    else {
      for (const p of report.problems) yield* Console.error(`${p.path}: ${p.problem} (${p.detail})`)
      yield* Console.log(`checked ${report.checked} paths, ${report.problems.length} problem(s)`)
    }
    if (report.problems.length > 0) {
      return yield* new StoreCorrupt({ store: store.read.uri, reason: `${report.problems.length} path(s) failed verification` })
    }
  }))
).pipe(Command.withDescription("Re-hash every valid path against the database (like `nix-store --verify --check-contents`)."))

const gc = Command.make("gc", {
  store: storeFlag,
  json: jsonFlag,
  dryRun: switchFlag("dry-run", "only print what would be deleted")
}, (args) => Effect.scoped(Effect.gen(function*() {
  const store = yield* openCliStore(args.store)
  const maintenance = yield* requireMaintenance(store, "garbage collection")
  const result = yield* maintenance.collectGarbage({ dryRun: args.dryRun })
  if (args.json) yield* Console.log(JSON.stringify({ dryRun: args.dryRun, ...result }))
  else {
    for (const path of result.deleted) yield* Console.log(args.dryRun ? `would delete ${path}` : `deleted ${path}`)
    yield* Console.error(`${result.deleted.length} store paths ${args.dryRun ? "would be " : ""}deleted, ${(result.bytesFreed / 1048576).toFixed(2)} MiB freed`)
  }
}))).pipe(Command.withDescription("Delete store paths not reachable from a GC root (like `nix-store --gc`)."))

export const storeCommand = Command.make("store").pipe(
  Command.withDescription("Add to, verify and clean a store."),
  Command.withSubcommands([add, addFixed, verify, gc])
)
