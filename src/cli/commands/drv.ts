/**
 * `b3 drv show|hash|outputs|attrs`: derivation tools on `.drv` files. Input derivations are read
 * from the directory the given `.drv` file is in (the store directory on disk, which may be a chroot
 * store's `<root>/nix/store`), while `--store-dir` is the logical store directory paths start with.
 * With `--store URI` the arguments are store paths, and they and their inputs are read from that
 * store (any store: local, a binary cache, …), whose store directory is the logical one.
 */
import { Console, Effect, FileSystem, Layer, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Drv from "../../core/derivation/index.ts"
import * as ByteString from "../../core/byte-string.ts"
import * as Hash from "../../core/hash.ts"
import * as StorePath from "../../core/store-path.ts"
import { readRegularFile } from "../../build/derivation-graph.ts"
import { StoreRead } from "../../services/store-read.ts"
import { fromResult } from "../effect-result.ts"
import { cliStore } from "../open-store.ts"
import { switchFlag } from "../flags.ts"
import { outputMode, printJson, UsageError } from "../output.ts"
import { readBounded } from "../../io/read-bounded.ts"

const storeDirFlag = Flag.String("store-dir").pipe(
  Flag.withDefault(StorePath.defaultStoreDir),
  Flag.withDescription("the logical store directory of the derivations")
)
const drvFile = Argument.String("drv-file").pipe(Argument.withDescription("a .drv file (a store path with --store)"))
const storeOption = Flag.String("store").pipe(Flag.optional,
  Flag.withDescription("read the derivations and their inputs from this store (any store URI); the arguments are then store paths"))

const baseNameOf = (file: string) => file.slice(file.lastIndexOf("/") + 1)
const dirOf = (file: string) => { const i = file.lastIndexOf("/"); return i < 0 ? "." : i === 0 ? "/" : file.slice(0, i) }

/** The derivation name of a file: from `<hash>-<name>.drv`, else the file name without `.drv`. */
const drvNameOf = (file: string): string => {
  const base = baseNameOf(file)
  const parsed = StorePath.parseBaseName(base)
  const name = parsed._tag === "Success" ? parsed.success.name : base
  return name.endsWith(Drv.drvExtension) ? name.slice(0, -Drv.drvExtension.length) : name
}

const readDrvFile = (file: string, storeDir: string) => Effect.gen(function*() {
  const bytes = yield* readBounded(file, Drv.maxDerivationBytes, "a derivation")
  const drv = yield* fromResult(Drv.parse(bytes, { name: drvNameOf(file), storeDir, source: file }))
  return { bytes, drv }
})

/** The store path of a `.drv` with these contents: a text path referring to its inputs. */
const drvPathOf = (bytes: Uint8Array, drv: Drv.Derivation, storeDir: string) => Effect.gen(function*() {
  const refs = yield* Effect.forEach([...drv.inputSrcs, ...drv.inputDrvs.keys()], (p) => fromResult(StorePath.parse(p, storeDir)))
  return StorePath.print(StorePath.makeText(drv.name + Drv.drvExtension, Hash.hashBytes("sha256", bytes), refs, storeDir), storeDir)
})

/**
 * Where a command reads derivations from: `.drv` files (inputs from the same directory), or a store
 * (`--store`; the arguments and the inputs are store paths in it). `input` gives undefined for an
 * input that is not there (hashDerivationModulo reports it as missing).
 */
interface DrvSource<E> {
  readonly storeDir: string
  readonly read: (arg: string) => Effect.Effect<{ readonly bytes: Uint8Array; readonly drv: Drv.Derivation }, E>
  readonly input: (path: string) => Effect.Effect<Drv.Derivation | undefined, E>
}

const fileSource = (storeDir: string, dir: string) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const read = (file: string) => readDrvFile(file, storeDir)
  return {
    storeDir,
    read,
    input: (path: string) => Effect.gen(function*() {
      const file = `${dir}/${baseNameOf(path)}`
      if (!(yield* fs.exists(file))) return undefined
      return (yield* read(file)).drv
    })
  }
})

const storeSource = Effect.gen(function*() {
  const store = yield* StoreRead
  const readPath = (printed: string) => Effect.gen(function*() {
    const path = yield* fromResult(StorePath.parse(printed, store.storeDir))
    const bytes = yield* readRegularFile(store, path)
    const drv = yield* fromResult(Drv.parse(bytes, { name: drvNameOf(printed), storeDir: store.storeDir, source: printed }))
    return { path, bytes, drv }
  })
  return {
    storeDir: store.storeDir,
    read: readPath,
    input: (printed: string) => Effect.gen(function*() {
      const path = yield* fromResult(StorePath.parse(printed, store.storeDir))
      if (!(yield* store.isValidPath(path))) return undefined
      return (yield* readPath(printed)).drv
    })
  }
})

/**
 * Runs `body` with the derivation source the flags choose: `--store` opens that store for the
 * command's run; otherwise files, inputs read from the directory of `file`.
 */
const withSource = <A, E, R>(
  args: { readonly storeDir: string; readonly store: Option.Option<string> },
  file: string,
  body: <SE>(source: DrvSource<SE>) => Effect.Effect<A, E | SE, R>
) => Option.isSome(args.store)
  ? Effect.flatMap(storeSource, body).pipe(Effect.provide(Layer.fresh(cliStore(args.store.value))))
  : Effect.flatMap(fileSource(args.storeDir, dirOf(file)), body)

/** Reads every input derivation reachable from `drv`, for hashing. */
const loadInputs = <E>(drv: Drv.Derivation, source: DrvSource<E>) => Effect.gen(function*() {
  const loaded = new Map<string, Drv.Derivation>()
  const todo = [...drv.inputDrvs.keys()]
  while (todo.length > 0) {
    const path = todo.pop()!
    if (loaded.has(path)) continue
    const input = yield* source.input(path)
    if (input === undefined) continue // hashDerivationModulo reports it as missing
    loaded.set(path, input)
    todo.push(...input.inputDrvs.keys())
  }
  return loaded
})

const show = Command.make("show", {
  storeDir: storeDirFlag,
  store: storeOption,
  files: Argument.String("drv-file").pipe(Argument.withDescription("a .drv file (a store path with --store)"), Argument.variadic({ min: 1 }))
}, (args) => withSource(args, args.files[0]!, (source) => Effect.gen(function*() {
  const entries: Array<readonly [string, Drv.Derivation]> = []
  for (const file of args.files) {
    const { bytes, drv } = yield* source.read(file)
    entries.push([yield* drvPathOf(bytes, drv, source.storeDir), drv])
  }
  yield* Effect.sync(() => process.stdout.write(ByteString.encodeBuffer(Drv.printShowDerivation(entries))))
}))).pipe(
  Command.withDescription("Print derivations as JSON, exactly like `nix show-derivation` (the output is JSON with or without --json)."),
  Command.withExamples([
    { command: "b3 drv show /tmp/r/nix/store/…-hello.drv", description: "a .drv file as nix show-derivation prints it" },
    { command: "b3 drv show --store 'local?root=/tmp/r' /nix/store/…-hello.drv", description: "a derivation in a store (any store URI, e.g. a binary cache)" }
  ]))

const hash = Command.make("hash", {
  storeDir: storeDirFlag,
  masked: switchFlag("masked", "hash with output paths masked (the hash its own output paths are made from)"),
  base32: switchFlag("base32", "print the hash in nix-base32"),
  sri: switchFlag("sri", "print the hash in SRI form"),
  store: storeOption,
  file: drvFile
}, (args) => withSource(args, args.file, (source) => Effect.gen(function*() {
  const { drv } = yield* source.read(args.file)
  const inputs = yield* loadInputs(drv, source)
  const result = yield* fromResult(Drv.hashDerivationModulo(drv, args.masked, { lookup: (p) => inputs.get(p), storeDir: source.storeDir }))
  const encoding: Hash.HashEncoding = args.sri ? "sri" : args.base32 ? "base32" : "base16"
  const sorted = [...result.hashes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, h]) => [name, Hash.encode(h, encoding)] as const)
  if ((yield* outputMode).json) return yield* printJson(Object.fromEntries(sorted))
  // Nix 2.8 gives every output of a derivation the same hash (a fixed-output derivation has only
  // `out`), so this is one line; should the hashes ever differ, each output gets a line of its own.
  const distinct = new Set(sorted.map(([, h]) => h))
  if (distinct.size === 1) yield* Console.log(sorted[0]![1])
  else for (const [name, h] of sorted) yield* Console.log(`${name} ${h}`)
}))).pipe(Command.withDescription("Print hashDerivationModulo of a derivation (base16; one hash, which all its outputs share; --json: {output: hash}); input .drv files are read from the same directory (or the --store store)."),
  Command.withExamples([{ command: "b3 drv hash --masked --base32 /tmp/r/nix/store/…-hello.drv", description: "the hash its output paths are computed from" }]))

const outputs = Command.make("outputs", { storeDir: storeDirFlag, store: storeOption, file: drvFile }, (args) => withSource(args, args.file, (source) => Effect.gen(function*() {
  const { drv } = yield* source.read(args.file)
  const inputs = yield* loadInputs(drv, source)
  const paths = yield* fromResult(Drv.checkOutputs(drv, { lookup: (p) => inputs.get(p), storeDir: source.storeDir }))
  const sorted = [...paths].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  if ((yield* outputMode).json) return yield* printJson(Object.fromEntries(sorted.map(([n, p]) => [n, p ?? null])))
  const type = yield* fromResult(Drv.derivationType(drv))
  const unknown = type === "Floating" ? "unknown until built: the derivation is floating content-addressed"
    : type === "Impure" ? "unknown until built: the derivation is impure"
    : "unknown until built: it depends on a floating content-addressed or impure derivation"
  for (const [name, path] of sorted) yield* Console.log(`${name} ${path ?? `(${unknown})`}`)
}))).pipe(Command.withDescription("Compute a derivation's output paths (checking the ones it records); outputs of floating content-addressed and impure derivations, and of derivations that depend on them, have no path until built (Nix: \"Cannot use output path of floating content-addressed derivation until we know what it is\"); input .drv files are read from the same directory (or the --store store)."),
  Command.withExamples([{ command: "b3 drv outputs --json /tmp/r/nix/store/…-hello.drv", description: "{output: path} (null where the path is known only after the build)" }]))

const attrs = Command.make("attrs", {
  storeDir: storeDirFlag,
  sh: switchFlag("sh", "print .attrs.sh instead of .attrs.json"),
  store: storeOption,
  file: drvFile
}, (args) => withSource(args, args.file, (source) => Effect.gen(function*() {
  if (args.sh && (yield* outputMode).json) return yield* new UsageError({ reason: "'--sh' prints shell code, which has no JSON form; leave out --json or --sh" })
  const { drv } = yield* source.read(args.file)
  const files = yield* fromResult(Drv.structuredAttrsFiles(drv))
  if (files === undefined) return yield* Effect.fail(new Drv.InvalidDerivation({ input: args.file, offset: -1, reason: "the derivation does not use structured attributes" }))
  yield* Effect.sync(() => process.stdout.write(args.sh ? files.shell : files.json))
}))).pipe(Command.withDescription("Print the .attrs.json (or .attrs.sh) a builder of a structured-attrs derivation gets."),
  Command.withExamples([{ command: "b3 drv attrs --sh /tmp/r/nix/store/…-hello.drv", description: "the .attrs.sh of a __structuredAttrs derivation" }]))

export const drvCommand = Command.make("drv").pipe(
  Command.withDescription("Inspect derivations (.drv files)."),
  Command.withSubcommands([show, hash, outputs, attrs]),
  Command.withExamples([{ command: "b3 drv outputs $(nix-instantiate '<nixpkgs>' -A hello)", description: "check the output paths of a .drv made by Nix" }])
)
