/**
 * `b3 drv show|hash|outputs|attrs`: derivation tools on `.drv` files. Input derivations are read
 * from the directory the given `.drv` file is in (the store directory on disk, which may be a chroot
 * store's `<root>/nix/store`), while `--store-dir` is the logical store directory paths start with.
 */
import { Console, Effect, FileSystem } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Drv from "../../core/derivation/index.ts"
import * as ByteString from "../../core/byte-string.ts"
import * as Hash from "../../core/hash.ts"
import * as StorePath from "../../core/store-path.ts"
import { fromResult } from "../effect-result.ts"
import { switchFlag } from "../flags.ts"
import { outputMode, printJson, UsageError } from "../output.ts"
import { maxDerivationBytes, readBounded } from "../../io/read-bounded.ts"

const storeDirFlag = Flag.String("store-dir").pipe(
  Flag.withDefault(StorePath.defaultStoreDir),
  Flag.withDescription("the logical store directory of the derivations")
)
const drvFile = Argument.String("drv-file").pipe(Argument.withDescription("a .drv file"))

const baseNameOf = (file: string) => file.slice(file.lastIndexOf("/") + 1)
const dirOf = (file: string) => { const i = file.lastIndexOf("/"); return i < 0 ? "." : i === 0 ? "/" : file.slice(0, i) }

/** The derivation name of a file: from `<hash>-<name>.drv`, else the file name without `.drv`. */
const drvNameOf = (file: string): string => {
  const base = baseNameOf(file)
  const parsed = StorePath.parseBaseName(base)
  const name = parsed._tag === "Success" ? parsed.success.name : base
  return name.endsWith(Drv.drvExtension) ? name.slice(0, -Drv.drvExtension.length) : name
}

const readDrv = (file: string, storeDir: string) => Effect.gen(function*() {
  const bytes = yield* readBounded(file, maxDerivationBytes, "a derivation")
  const drv = yield* fromResult(Drv.parse(bytes, { name: drvNameOf(file), storeDir, source: file }))
  return { bytes, drv }
})

/** The store path of a `.drv` with these contents: a text path referring to its inputs. */
const drvPathOf = (bytes: Uint8Array, drv: Drv.Derivation, storeDir: string) => Effect.gen(function*() {
  const refs = yield* Effect.forEach([...drv.inputSrcs, ...drv.inputDrvs.keys()], (p) => fromResult(StorePath.parse(p, storeDir)))
  return StorePath.print(StorePath.makeText(drv.name + Drv.drvExtension, Hash.hashBytes("sha256", bytes), refs, storeDir), storeDir)
})

/** Reads every input derivation reachable from `drv` from `dir`, for hashing. */
const loadInputs = (drv: Drv.Derivation, dir: string, storeDir: string) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const loaded = new Map<string, Drv.Derivation>()
  const todo = [...drv.inputDrvs.keys()]
  while (todo.length > 0) {
    const path = todo.pop()!
    if (loaded.has(path)) continue
    const file = `${dir}/${baseNameOf(path)}`
    if (!(yield* fs.exists(file))) continue // hashDerivationModulo reports it as missing
    const { drv: input } = yield* readDrv(file, storeDir)
    loaded.set(path, input)
    todo.push(...input.inputDrvs.keys())
  }
  return loaded
})

const show = Command.make("show", {
  storeDir: storeDirFlag,
  files: Argument.String("drv-file").pipe(Argument.withDescription("a .drv file"), Argument.variadic({ min: 1 }))
}, (args) => Effect.gen(function*() {
  const entries: Array<readonly [string, Drv.Derivation]> = []
  for (const file of args.files) {
    const { bytes, drv } = yield* readDrv(file, args.storeDir)
    entries.push([yield* drvPathOf(bytes, drv, args.storeDir), drv])
  }
  yield* Effect.sync(() => process.stdout.write(ByteString.encodeBuffer(Drv.printShowDerivation(entries))))
})).pipe(
  Command.withDescription("Print derivations as JSON, exactly like `nix show-derivation` (the output is JSON with or without --json)."),
  Command.withExamples([{ command: "b3 drv show /tmp/r/nix/store/…-hello.drv", description: "a .drv file as nix show-derivation prints it" }]))

const hash = Command.make("hash", {
  storeDir: storeDirFlag,
  masked: switchFlag("masked", "hash with output paths masked (the hash its own output paths are made from)"),
  base32: switchFlag("base32", "print the hash in nix-base32"),
  sri: switchFlag("sri", "print the hash in SRI form"),
  file: drvFile
}, (args) => Effect.gen(function*() {
  const { drv } = yield* readDrv(args.file, args.storeDir)
  const inputs = yield* loadInputs(drv, dirOf(args.file), args.storeDir)
  const result = yield* fromResult(Drv.hashDerivationModulo(drv, args.masked, { lookup: (p) => inputs.get(p), storeDir: args.storeDir }))
  const encoding: Hash.HashEncoding = args.sri ? "sri" : args.base32 ? "base32" : "base16"
  const sorted = [...result.hashes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, h]) => [name, Hash.encode(h, encoding)] as const)
  if ((yield* outputMode).json) return yield* printJson(Object.fromEntries(sorted))
  // Nix 2.8 gives every output of a derivation the same hash (a fixed-output derivation has only
  // `out`), so this is one line; should the hashes ever differ, each output gets a line of its own.
  const distinct = new Set(sorted.map(([, h]) => h))
  if (distinct.size === 1) yield* Console.log(sorted[0]![1])
  else for (const [name, h] of sorted) yield* Console.log(`${name} ${h}`)
})).pipe(Command.withDescription("Print hashDerivationModulo of a derivation (base16; one hash, which all its outputs share; --json: {output: hash}); input .drv files are read from the same directory."),
  Command.withExamples([{ command: "b3 drv hash --masked --base32 /tmp/r/nix/store/…-hello.drv", description: "the hash its output paths are computed from" }]))

const outputs = Command.make("outputs", { storeDir: storeDirFlag, file: drvFile }, (args) => Effect.gen(function*() {
  const { drv } = yield* readDrv(args.file, args.storeDir)
  const inputs = yield* loadInputs(drv, dirOf(args.file), args.storeDir)
  const paths = yield* fromResult(Drv.checkOutputs(drv, { lookup: (p) => inputs.get(p), storeDir: args.storeDir }))
  const sorted = [...paths].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  if ((yield* outputMode).json) return yield* printJson(Object.fromEntries(sorted.map(([n, p]) => [n, p ?? null])))
  const type = yield* fromResult(Drv.derivationType(drv))
  const unknown = type === "Floating" ? "unknown until built: the derivation is floating content-addressed"
    : type === "Impure" ? "unknown until built: the derivation is impure"
    : "unknown until built: it depends on a floating content-addressed or impure derivation"
  for (const [name, path] of sorted) yield* Console.log(`${name} ${path ?? `(${unknown})`}`)
})).pipe(Command.withDescription("Compute a derivation's output paths (checking the ones it records); outputs of floating content-addressed and impure derivations, and of derivations that depend on them, have no path until built (Nix: \"Cannot use output path of floating content-addressed derivation until we know what it is\"); input .drv files are read from the same directory."),
  Command.withExamples([{ command: "b3 drv outputs --json /tmp/r/nix/store/…-hello.drv", description: "{output: path} (null where the path is known only after the build)" }]))

const attrs = Command.make("attrs", {
  storeDir: storeDirFlag,
  sh: switchFlag("sh", "print .attrs.sh instead of .attrs.json"),
  file: drvFile
}, (args) => Effect.gen(function*() {
  if (args.sh && (yield* outputMode).json) return yield* new UsageError({ reason: "'--sh' prints shell code, which has no JSON form; leave out --json or --sh" })
  const { drv } = yield* readDrv(args.file, args.storeDir)
  const files = yield* fromResult(Drv.structuredAttrsFiles(drv))
  if (files === undefined) return yield* Effect.fail(new Drv.InvalidDerivation({ input: args.file, offset: -1, reason: "the derivation does not use structured attributes" }))
  yield* Effect.sync(() => process.stdout.write(args.sh ? files.shell : files.json))
})).pipe(Command.withDescription("Print the .attrs.json (or .attrs.sh) a builder of a structured-attrs derivation gets."),
  Command.withExamples([{ command: "b3 drv attrs --sh /tmp/r/nix/store/…-hello.drv", description: "the .attrs.sh of a __structuredAttrs derivation" }]))

export const drvCommand = Command.make("drv").pipe(
  Command.withDescription("Inspect derivations (.drv files)."),
  Command.withSubcommands([show, hash, outputs, attrs]),
  Command.withExamples([{ command: "b3 drv outputs $(nix-instantiate '<nixpkgs>' -A hello)", description: "check the output paths of a .drv made by Nix" }])
)
