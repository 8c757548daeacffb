/** `b3 narinfo verify|sign`: check and add signatures of binary-cache `.narinfo` files. */
import { Console, Effect, FileSystem } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as NarInfo from "../../core/narinfo.ts"
import * as Signature from "../../core/signature.ts"
import * as StorePath from "../../core/store-path.ts"
import { fromResult } from "../effect-result.ts"

const storeDirFlag = Flag.String("store-dir").pipe(
  Flag.withDefault(StorePath.defaultStoreDir),
  Flag.withDescription("the store directory the narinfo's paths are in")
)

const readNarInfo = (file: string, storeDir: string) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  return yield* fromResult(NarInfo.parse(yield* fs.readFileString(file), { storeDir, source: file }))
})

const verify = Command.make("verify", {
  trustedKeys: Flag.String("trusted-key").pipe(Flag.atLeast(1), Flag.withDescription("a trusted public key 'name:base64' (repeatable)")),
  storeDir: storeDirFlag,
  file: Argument.String("narinfo").pipe(Argument.withDescription("a .narinfo file"))
}, (args) => Effect.gen(function*() {
  const keys = yield* Effect.forEach(args.trustedKeys, (k) => fromResult(Signature.parsePublicKey(k)))
  const info = yield* readNarInfo(args.file, args.storeDir)
  yield* Console.log(yield* fromResult(NarInfo.verify(info, keys, args.storeDir)))
})).pipe(Command.withDescription("Check a narinfo's signatures; print the name of the trusted key that signed it (exit 4 if none did)."))

const sign = Command.make("sign", {
  keyFile: Flag.String("key-file").pipe(Flag.withDescription("secret key file")),
  storeDir: storeDirFlag,
  files: Argument.String("narinfo").pipe(Argument.withDescription("a .narinfo file, rewritten with the signature added"), Argument.variadic({ min: 1 }))
}, (args) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const key = yield* fromResult(Signature.parseSecretKey(yield* fs.readFileString(args.keyFile)))
  for (const file of args.files) {
    const info = yield* readNarInfo(file, args.storeDir)
    yield* fs.writeFileString(file, NarInfo.print(NarInfo.sign(info, key, args.storeDir)))
  }
})).pipe(Command.withDescription("Sign narinfo files in place (like `nix store sign` on a binary cache)."))

export const narinfoCommand = Command.make("narinfo").pipe(
  Command.withDescription("Check and sign .narinfo files."),
  Command.withSubcommands([verify, sign])
)
