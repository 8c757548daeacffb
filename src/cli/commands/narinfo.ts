/** `b3 narinfo verify|sign`: check and add signatures of binary-cache `.narinfo` files. */
import { Console, Effect, FileSystem } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as NarInfo from "../../core/narinfo.ts"
import * as Signature from "../../core/signature.ts"
import * as StorePath from "../../core/store-path.ts"
import { fromResult } from "../effect-result.ts"
import { outputMode, printJson } from "../output.ts"
import { readBoundedString } from "../../io/read-bounded.ts"
import { readSecretKey } from "../trust.ts"

const storeDirFlag = Flag.String("store-dir").pipe(
  Flag.withDefault(StorePath.defaultStoreDir),
  Flag.withDescription("the store directory the narinfo's paths are in")
)

const readNarInfo = (file: string, storeDir: string) => Effect.gen(function*() {
  return yield* fromResult(NarInfo.parse(yield* readBoundedString(file, NarInfo.maxNarInfoBytes, "a narinfo"), { storeDir, source: file }))
})

const verify = Command.make("verify", {
  trustedKeys: Flag.String("trusted-key").pipe(Flag.atLeast(1), Flag.withDescription("a trusted public key 'name:base64' (repeatable)")),
  storeDir: storeDirFlag,
  file: Argument.String("narinfo").pipe(Argument.withDescription("a .narinfo file"))
}, (args) => Effect.gen(function*() {
  const keys = yield* Effect.forEach(args.trustedKeys, (k) => fromResult(Signature.parsePublicKey(k)))
  const info = yield* readNarInfo(args.file, args.storeDir)
  const trustedKey = yield* fromResult(NarInfo.verify(info, keys, args.storeDir))
  yield* ((yield* outputMode).json ? printJson({ file: args.file, trustedKey }) : Console.log(trustedKey))
})).pipe(
  Command.withDescription("Check a narinfo's signatures; print the name of the trusted key that signed it (exit 4 if none did)."),
  Command.withExamples([{ command: "b3 narinfo verify --trusted-key \"$(cat key.pub)\" /srv/cache/….narinfo", description: "check a cache entry's signature" }]))

const sign = Command.make("sign", {
  keyFile: Flag.String("key-file").pipe(Flag.withDescription("secret key file")),
  storeDir: storeDirFlag,
  files: Argument.String("narinfo").pipe(Argument.withDescription("a .narinfo file, rewritten with the signature added"), Argument.variadic({ min: 1 }))
}, (args) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const key = yield* readSecretKey(args.keyFile)
  for (const file of args.files) {
    const info = yield* readNarInfo(file, args.storeDir)
    yield* fs.writeFileString(file, NarInfo.print(NarInfo.sign(info, key, args.storeDir)))
  }
  if ((yield* outputMode).json) yield* printJson({ signed: args.files })
})).pipe(
  Command.withDescription("Sign narinfo files in place (like `nix store sign` on a binary cache); prints nothing (with --json {\"signed\": [files]})."),
  Command.withExamples([{ command: "b3 narinfo sign --key-file key.sec /srv/cache/*.narinfo", description: "sign every entry of a file cache" }]))

export const narinfoCommand = Command.make("narinfo").pipe(
  Command.withDescription("Check and sign .narinfo files."),
  Command.withSubcommands([verify, sign]),
  Command.withExamples([{ command: "b3 narinfo sign --key-file key.sec x.narinfo && b3 narinfo verify --trusted-key \"$(cat key.pub)\" x.narinfo", description: "sign, then check" }])
)
