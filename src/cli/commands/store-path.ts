/** `b3 store-path fixed|text`: the store path Nix would give, computed without touching a store. */
import { Console, Effect, FileSystem } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Hash from "../../core/hash.ts"
import * as StorePath from "../../core/store-path.ts"
import { fromResult } from "../effect-result.ts"
import { switchFlag } from "../flags.ts"
import { outputMode, printJson } from "../output.ts"

const storeDirFlag = Flag.String("store-dir").pipe(
  Flag.withDefault(StorePath.defaultStoreDir),
  Flag.withDescription("the logical store directory")
)
const nameFlag = Flag.String("name").pipe(Flag.withDescription("the name part of the store path"))

const printPath = (path: string) => Effect.flatMap(outputMode, (mode) => mode.json ? printJson({ path }) : Console.log(path))

const fixed = Command.make("fixed", {
  name: nameFlag,
  recursive: switchFlag("recursive", "the hash is of a NAR (nix-store --add-fixed --recursive)"),
  storeDir: storeDirFlag,
  hash: Argument.String("hash").pipe(Argument.withDescription("algo:digest or SRI"))
}, (args) => Effect.gen(function*() {
  const storeDir = yield* fromResult(StorePath.validateStoreDir(args.storeDir))
  const name = yield* fromResult(StorePath.validateName(args.name))
  const hash = yield* fromResult(Hash.parse(args.hash))
  const path = StorePath.makeFixedOutput(args.recursive ? "recursive" : "flat", hash, name, { storeDir })
  yield* printPath(StorePath.print(path, storeDir))
})).pipe(Command.withDescription("Print the path of a fixed-output (content-addressed) file or NAR with the given hash."),
  Command.withExamples([{ command: "b3 store-path fixed --name src.tar.gz sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", description: "where `nix-store --add-fixed sha256 src.tar.gz` would put it" }]))

const text = Command.make("text", {
  name: nameFlag,
  refs: Flag.String("ref").pipe(Flag.atLeast(0), Flag.withDescription("a store path the text refers to (repeatable)")),
  storeDir: storeDirFlag,
  file: Argument.String("file").pipe(Argument.withDescription("file with the text contents"))
}, (args) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const storeDir = yield* fromResult(StorePath.validateStoreDir(args.storeDir))
  const name = yield* fromResult(StorePath.validateName(args.name))
  const references = yield* Effect.forEach(args.refs, (ref) => fromResult(StorePath.parse(ref, storeDir)))
  const contents = yield* fs.readFile(args.file)
  const path = StorePath.makeText(name, Hash.hashBytes("sha256", contents), references, storeDir)
  yield* printPath(StorePath.print(path, storeDir))
})).pipe(Command.withDescription("Print the path `builtins.toFile` / addTextToStore gives a text file."),
  Command.withExamples([{ command: "b3 store-path text --name builder.sh ./builder.sh", description: "the path of builtins.toFile \"builder.sh\" (its contents)" }]))

export const storePathCommand = Command.make("store-path").pipe(
  Command.withDescription("Compute store paths without touching a store."),
  Command.withSubcommands([fixed, text]),
  Command.withExamples([{ command: "b3 --json store-path fixed --recursive --name src sha256-…", description: "print {\"path\"} of a fixed-output tree" }])
)
