/** `b3 store-path fixed|text`: the store path Nix would give, computed without touching a store. */
import { Console, Effect, FileSystem } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Hash from "../../core/hash.ts"
import * as StorePath from "../../core/store-path.ts"
import { fromResult } from "../effect-result.ts"
import { switchFlag } from "../flags.ts"

const storeDirFlag = Flag.String("store-dir").pipe(
  Flag.withDefault(StorePath.defaultStoreDir),
  Flag.withDescription("the logical store directory")
)
const nameFlag = Flag.String("name").pipe(Flag.withDescription("the name part of the store path"))

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
  yield* Console.log(StorePath.print(path, storeDir))
})).pipe(Command.withDescription("Print the path of a fixed-output (content-addressed) file or NAR with the given hash."))

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
  yield* Console.log(StorePath.print(path, storeDir))
})).pipe(Command.withDescription("Print the path `builtins.toFile` / addTextToStore gives a text file."))

export const storePathCommand = Command.make("store-path").pipe(
  Command.withDescription("Compute store paths without touching a store."),
  Command.withSubcommands([fixed, text])
)
