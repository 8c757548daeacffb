/** `b3 store add|add-fixed|add-tool|verify|gc`: working with a store's contents. */
import { Console, Context, Effect, FileSystem } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { basename, join, resolve } from "node:path"
import * as Hash from "../../core/hash.ts"
import * as StorePath from "../../core/store-path.ts"
import { storeFlag, switchFlag } from "../flags.ts"
import { outputMode, printJson, UsageError } from "../output.ts"
import { cliWritableStore, openCliStore } from "../open-store.ts"
import { StoreRead } from "../../services/store-read.ts"
import { StoreWrite } from "../../services/store-write.ts"
import { makeProgress, mib, rate } from "../progress.ts"
import { requireMaintenance } from "../../services/registry.ts"
import { StoreCorrupt, Unsupported } from "../../services/store-errors.ts"
import type { RepackResult } from "../../services/store-maintenance.ts"
import type { AddPathOptions } from "../../services/store-write.ts"

const pathsArg = Argument.String("path").pipe(Argument.variadic({ min: 1 }), Argument.withDescription("file system paths to add"))

/**
 * Adds each file-system path and prints its store path as soon as it is added (with --json
 * `{"path", "narHash", "narSize"}`), with a progress line on a terminal.
 */
const addAll = (storeUri: string, paths: ReadonlyArray<string>, options?: AddPathOptions) => Effect.gen(function*() {
  const mode = yield* outputMode
  const store = yield* StoreRead
  const write = yield* StoreWrite
  const progress = makeProgress("add", mode)
  const started = Date.now()
  let bytes = 0
  for (const [i, file] of paths.entries()) {
    const show = (current: number) => progress.update(`${i}/${paths.length} paths, ${mib(bytes + current)}, ${rate(bytes + current, started)}: adding ${file}`)
    show(0)
    const info = yield* write.addPath(resolve(file), { ...options, onProgress: show })
    bytes += info.narSize
    progress.done()
    const path = StorePath.print(info.path, store.storeDir)
    yield* (mode.json ? printJson({ path, narHash: Hash.print(info.narHash, "sri"), narSize: info.narSize }) : Console.log(path))
  }
}).pipe(Effect.provide(cliWritableStore(storeUri)))

const add = Command.make("add", { store: storeFlag, paths: pathsArg }, (args) => addAll(args.store, args.paths)).pipe(
  Command.withDescription("Add files or trees to the store and print their store paths (like `nix-store --add`)."),
  Command.withExamples([
    { command: "b3 store add --store /tmp/r ./src", description: "add a tree to a chroot store (logical /nix/store under /tmp/r)" },
    { command: "b3 store add --json ./src", description: "print {\"path\", \"narHash\", \"narSize\"} per path" }
  ]))

const addFixed = Command.make("add-fixed", {
  store: storeFlag,
  recursive: switchFlag("recursive", "hash the NAR serialisation (a tree) instead of a single file's bytes"),
  type: Flag.Literals("type", Hash.hashAlgorithms).pipe(Flag.withDefault("sha256" as const), Flag.withDescription("hash algorithm")),
  paths: pathsArg
}, (args) => addAll(args.store, args.paths, { method: args.recursive ? "recursive" : "flat", algorithm: args.type })).pipe(
  Command.withDescription("Add files as fixed-output paths (like `nix-store --add-fixed [--recursive] ALGO`)."),
  Command.withExamples([{ command: "b3 store add-fixed --recursive --store /tmp/r ./busybox", description: "add a tree as a fixed-output (recursive sha256) path" }]))

/**
 * A static tool (busybox, a statically linked shell…) as a store path builders can use: the tree
 * NAME/bin/TOOL (the file, executable) with each --link as a symlink to it in bin/ (busybox's applets:
 * `--link sh` gives NAME/bin/sh), added as `nix-store --add-fixed --recursive sha256 NAME` would,
 * so the path depends only on the file's bytes, the name and the links.
 */
const addTool = Command.make("add-tool", {
  store: storeFlag,
  name: Flag.String("name").pipe(Flag.optional, Flag.withDescription("the store path's name (default: the file's name)")),
  links: Flag.String("link").pipe(Flag.atLeast(0), Flag.withDescription("a name in bin/ that links to the tool, e.g. sh for busybox (repeatable)")),
  file: Argument.String("file").pipe(Argument.withDescription("the tool: a statically linked executable"))
}, (args) => Effect.scoped(Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const file = resolve(args.file)
  const tool = basename(file)
  const name = args.name._tag === "Some" ? args.name.value : tool
  const bad = (what: string, value: string) => !value || value === "." || value === ".." || value.includes("/")
    ? new UsageError({ reason: `${what} '${value}' must be a plain file name` }) : undefined
  for (const [what, value] of [["--name", name], ...args.links.map((l) => ["--link", l] as const)] as const) {
    const problem = bad(what, value)
    if (problem) return yield* problem
  }
  if (args.links.includes(tool)) return yield* new UsageError({ reason: `--link '${tool}' is the tool's own name` })
  const info = yield* fs.stat(file)
  if (info.type !== "File") return yield* new UsageError({ reason: `'${args.file}' is not a regular file` })
  const staging = yield* fs.makeTempDirectoryScoped({ prefix: "b3-add-tool-" })
  const bin = join(staging, name, "bin")
  yield* fs.makeDirectory(bin, { recursive: true })
  yield* fs.copyFile(file, join(bin, tool))
  yield* fs.chmod(join(bin, tool), 0o755)
  for (const link of new Set(args.links)) yield* fs.symlink(tool, join(bin, link))
  yield* addAll(args.store, [join(staging, name)], { method: "recursive", algorithm: "sha256" })
}))).pipe(
  Command.withDescription("Add a static tool as a store path NAME/bin/TOOL, with symlinks to it in bin/ (a fixed-output path, as `nix-store --add-fixed --recursive sha256` of that tree)."),
  Command.withExamples([{ command: "b3 store add-tool --store /tmp/r --name bb --link sh /bin/busybox", description: "busybox as <path>/bin/busybox and <path>/bin/sh, for builders" }]))

const verify = Command.make("verify", { store: storeFlag }, (args) =>
  Effect.scoped(Effect.gen(function*() {
    const mode = yield* outputMode
    const store = yield* openCliStore(args.store)
    const maintenance = yield* requireMaintenance(store, "verifying contents")
    const progress = makeProgress("verify", mode)
    const report = yield* maintenance.verify({ onProgress: (done, total) => progress.update(`${done}/${total} paths`) })
    progress.done()
    if (mode.json) yield* printJson(report)
    else {
      for (const p of report.problems) yield* Console.error(`${p.path}: ${p.problem} (${p.detail})`)
      yield* Console.log(`checked ${report.checked} paths, ${report.problems.length} problem(s)`)
    }
    if (report.problems.length > 0) {
      return yield* new StoreCorrupt({ store: Context.get(store, StoreRead).uri, reason: `${report.problems.length} path(s) failed verification` })
    }
  }))
).pipe(
  Command.withDescription("Re-hash every valid path against the database (like `nix-store --verify --check-contents`); exit 1 if any path is damaged."),
  Command.withExamples([{ command: "b3 store verify --store /tmp/r", description: "check every path's contents against its recorded hash" }]))

const gc = Command.make("gc", {
  store: storeFlag,
  dryRun: switchFlag("dry-run", "only print what would be deleted")
}, (args) => Effect.scoped(Effect.gen(function*() {
  const mode = yield* outputMode
  const store = yield* openCliStore(args.store)
  const maintenance = yield* requireMaintenance(store, "garbage collection")
  const progress = makeProgress("gc", mode)
  progress.update(args.dryRun ? "finding unreachable paths" : "deleting unreachable paths")
  const result = yield* maintenance.collectGarbage({ dryRun: args.dryRun }).pipe(Effect.ensuring(Effect.sync(progress.done)))
  if (mode.json) yield* printJson({ dryRun: args.dryRun, ...result })
  else {
    for (const path of result.deleted) yield* Console.log(args.dryRun ? `would delete ${path}` : `deleted ${path}`)
    const repacked = result.repack
    if (repacked) yield* Console.log(repackSummary(repacked))
    else if (!mode.quiet) yield* Console.error(`${result.deleted.length} store paths ${args.dryRun ? "would be " : ""}deleted, ${(result.bytesFreed / 1048576).toFixed(2)} MiB freed`)
  }
}))).pipe(
  Command.withDescription("Delete store paths not reachable from a GC root (like `nix-store --gc`); on a chunk store, drop chunks no path uses and repack the packs they leave mostly empty (bytes freed)."),
  Command.withExamples([{ command: "b3 store gc --dry-run --store /tmp/r", description: "list what would be deleted" }]))

const repackSummary = (r: RepackResult) =>
  `${r.dryRun ? "would rewrite" : "rewrote"} ${r.packsRewritten} pack(s) (${mib(r.bytesCopied)} kept), ${r.dryRun ? "would delete" : "deleted"} ${r.packsDeleted}; ${mib(r.bytesFreed)} ${r.dryRun ? "would be " : ""}freed (${r.bytesFreed} bytes)`

const repack = Command.make("repack", {
  store: storeFlag,
  dryRun: switchFlag("dry-run", "only report what would be rewritten and freed")
}, (args) => Effect.scoped(Effect.gen(function*() {
  const mode = yield* outputMode
  const store = yield* openCliStore(args.store)
  const maintenance = yield* requireMaintenance(store, "repacking")
  if (!maintenance.repack) return yield* new Unsupported({ store: Context.get(store, StoreRead).uri, operation: "repacking (only chunk stores have packs)" })
  const result = yield* maintenance.repack({ dryRun: args.dryRun })
  yield* (mode.json ? printJson(result) : Console.log(repackSummary(result)))
}))).pipe(
  Command.withDescription("Rewrite a chunk store's packs whose live fraction fell below its threshold, without their garbage."),
  Command.withExamples([{ command: "b3 store repack --dry-run --store chunked+file:///srv/chunks", description: "how much a repack would free" }]))

const stats = Command.make("stats", { store: storeFlag }, (args) => Effect.scoped(Effect.gen(function*() {
  const mode = yield* outputMode
  const store = yield* openCliStore(args.store)
  const maintenance = yield* requireMaintenance(store, "statistics")
  if (!maintenance.stats) return yield* new Unsupported({ store: Context.get(store, StoreRead).uri, operation: "statistics (only chunk stores keep them)" })
  const s = yield* maintenance.stats()
  if (mode.json) return yield* printJson(s)
  for (const [key, value] of Object.entries(s)) {
    yield* Console.log(`${key.padEnd(18)} ${key.endsWith("Bytes") ? `${value} (${mib(value)})` : Number.isInteger(value) ? value : value.toFixed(3)}`)
  }
}))).pipe(
  Command.withDescription("Sizes of a chunk store: logical and stored bytes, dedup ratio, chunks, packs, live fraction, chunks stored as deltas (count, stored and raw bytes)."),
  Command.withExamples([{ command: "b3 store stats --json --store chunked+file:///srv/chunks", description: "as JSON" }]))

const remove = Command.make("delete", {
  store: storeFlag,
  paths: Argument.String("path").pipe(Argument.variadic({ min: 1 }), Argument.withDescription("store paths to delete"))
}, (args) => Effect.scoped(Effect.gen(function*() {
  const mode = yield* outputMode
  const store = yield* openCliStore(args.store)
  const maintenance = yield* requireMaintenance(store, "deleting paths")
  if (!maintenance.deletePaths) return yield* new Unsupported({ store: Context.get(store, StoreRead).uri, operation: "deleting given paths" })
  const paths = yield* Effect.forEach(args.paths, (p) => Effect.mapError(Effect.fromResult(StorePath.parse(p, Context.get(store, StoreRead).storeDir)), (e) => new UsageError({ reason: e.message })))
  const deleted = yield* maintenance.deletePaths(paths)
  for (const p of deleted) yield* (mode.json ? printJson({ deleted: p }) : Console.log(`deleted ${p}`))
}))).pipe(
  Command.withDescription("Delete paths from a chunk store (their chunks are freed by the next `b3 store gc`)."),
  Command.withExamples([{ command: "b3 store delete --store chunked+file:///srv/chunks /nix/store/…-old", description: "delete a path, then `b3 store gc` frees its chunks" }]))

export const storeCommand = Command.make("store").pipe(
  Command.withDescription("Add to, verify and clean a store."),
  Command.withSubcommands([add, addFixed, addTool, verify, gc, remove, repack, stats]),
  Command.withExamples([{ command: "b3 store add --store 'local?root=/tmp/r' ./src && b3 store verify --store /tmp/r", description: "add, then verify" }])
)
