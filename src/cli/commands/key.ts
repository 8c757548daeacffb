/** `b3 key generate|public`: Ed25519 binary-cache signing keys in Nix's `name:base64` format. */
import { Console, Effect, FileSystem } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Signature from "../../core/signature.ts"
import { outputMode, printJson } from "../output.ts"
import { readSecretKey } from "../trust.ts"

const generate = Command.make("generate", {
  name: Flag.String("name").pipe(Flag.withDescription("the key name, e.g. cache.example.org-1")),
  secret: Flag.String("secret").pipe(Flag.withDescription("file to write the secret key to (mode 0600)")),
  public: Flag.String("public").pipe(Flag.withDescription("file to write the public key to"))
}, (args) => Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  if (args.name === "" || args.name.includes(":")) {
    return yield* Effect.fail(new Signature.InvalidKey({ input: args.name, reason: "a key name must be non-empty and contain no ':'" }))
  }
  const secret = Signature.generateSecretKey(args.name)
  yield* fs.writeFileString(args.public, Signature.printPublicKey(Signature.publicKeyOf(secret)))
  yield* fs.writeFileString(args.secret, Signature.printSecretKey(secret), { mode: 0o600 })
  yield* fs.chmod(args.secret, 0o600)
  if ((yield* outputMode).json) {
    yield* printJson({ name: args.name, publicKey: Signature.printPublicKey(Signature.publicKeyOf(secret)), secretKeyFile: args.secret, publicKeyFile: args.public })
  }
})).pipe(
  Command.withDescription("Generate a key pair (like `nix-store --generate-binary-cache-key NAME SECRET PUBLIC`); prints nothing (with --json {\"name\", \"publicKey\", \"secretKeyFile\", \"publicKeyFile\"})."),
  Command.withExamples([{ command: "b3 key generate --name cache.example.org-1 --secret key.sec --public key.pub", description: "a key pair for signing a binary cache" }]))

const publicOf = Command.make("public", {
  secret: Argument.String("secret-key-file").pipe(Argument.withDescription("a secret key file"))
}, (args) => Effect.gen(function*() {
  const secret = yield* readSecretKey(args.secret)
  const publicKey = Signature.printPublicKey(Signature.publicKeyOf(secret))
  yield* ((yield* outputMode).json ? printJson({ publicKey }) : Console.log(publicKey))
})).pipe(
  Command.withDescription("Print the public key of a secret key file."),
  Command.withExamples([{ command: "b3 key public key.sec", description: "the 'name:base64' public key to trust" }]))

export const keyCommand = Command.make("key").pipe(
  Command.withDescription("Generate and inspect binary-cache signing keys."),
  Command.withSubcommands([generate, publicOf]),
  Command.withExamples([{ command: "b3 key generate --name demo-1 --secret key.sec --public key.pub && b3 key public key.sec", description: "make a key pair and show its public key" }])
)
