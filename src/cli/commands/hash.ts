/** `b3 hash file|path|convert`: hashes as `nix hash file|path` and `nix hash to-*` print them. */
import { Console, Effect, FileSystem, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as Hash from "../../core/hash.ts"
import { narDigestOfPath } from "../../nar/fs/index.ts"
import { fromResult } from "../effect-result.ts"
import { switchFlag } from "../flags.ts"
import { outputMode, printJson } from "../output.ts"

const typeFlag = Flag.Literals("type", Hash.hashAlgorithms).pipe(
  Flag.withDefault("sha256" as const),
  Flag.withDescription("hash algorithm")
)

const encodingFlags = {
  base16: switchFlag("base16", "print the digest in base16"),
  base32: switchFlag("base32", "print the digest in nix-base32"),
  base64: switchFlag("base64", "print the digest in base64"),
  sri: switchFlag("sri", "print the hash in SRI form (the default)")
}

const chosenEncoding = (f: { base16: boolean; base32: boolean; base64: boolean }): Hash.HashEncoding =>
  f.base16 ? "base16" : f.base32 ? "base32" : f.base64 ? "base64" : "sri"

/** One line per input: the hash, or with --json `{"<key>": input, "hash": …}`. */
const printHash = (key: "path" | "input", input: string, hash: string) => Effect.flatMap(outputMode, (mode) =>
  mode.json ? printJson({ [key]: input, hash }) : Console.log(hash))

const hashStream = <E, R>(algorithm: Hash.HashAlgorithm, stream: Stream.Stream<Uint8Array, E, R>) =>
  Stream.runFold(stream, () => Hash.hasher(algorithm), (h, chunk) => { h.update(chunk); return h }).pipe(
    Effect.map((h) => h.digest())
  )

const hashFile = Command.make("file", { type: typeFlag, ...encodingFlags, paths: Argument.String("path").pipe(Argument.variadic({ min: 1 })) },
  (args) => Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    for (const path of args.paths) {
      const hash = yield* hashStream(args.type, fs.stream(path))
      yield* printHash("path", path, Hash.encode(hash, chosenEncoding(args)))
    }
  })
).pipe(Command.withDescription("Print the hash of a file's contents (like `nix hash file`)."),
  Command.withExamples([{ command: "b3 hash file --base32 ./nixpkgs.tar.xz", description: "the sha256 of a file, in nix-base32" }]))

const hashPath = Command.make("path", { type: typeFlag, ...encodingFlags, paths: Argument.String("path").pipe(Argument.variadic({ min: 1 })) },
  (args) => Effect.gen(function*() {
    for (const path of args.paths) {
      const { hash } = yield* narDigestOfPath(path, args.type)
      yield* printHash("path", path, Hash.encode(hash, chosenEncoding(args)))
    }
  })
).pipe(Command.withDescription("Print the hash of the NAR serialisation of a path (like `nix hash path`)."),
  Command.withExamples([{ command: "b3 hash path ./src", description: "the SRI sha256 of a tree's NAR, as in a store path's narHash" }]))

const hashConvert = Command.make("convert", {
  to: Flag.Literals("to", ["base16", "base32", "base64", "sri"] as const).pipe(Flag.withDescription("target encoding")),
  type: Flag.Literals("type", Hash.hashAlgorithms).pipe(Flag.optional, Flag.withDescription("algorithm of bare digests")),
  hashes: Argument.String("hash").pipe(Argument.variadic({ min: 1 }))
}, (args) => Effect.gen(function*() {
  for (const input of args.hashes) {
    const hash = yield* fromResult(Hash.parse(input, args.type._tag === "Some" ? args.type.value : undefined))
    yield* printHash("input", input, args.to === "sri" ? Hash.encode(hash, "sri") : Hash.print(hash, args.to))
  }
})).pipe(Command.withDescription("Convert hashes between base16, nix-base32, base64 and SRI (`algo:hash` or SRI input)."),
  Command.withExamples([{ command: "b3 hash convert --to base32 sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", description: "SRI to nix-base32" }]))

export const hashCommand = Command.make("hash").pipe(
  Command.withDescription("Compute and convert hashes."),
  Command.withSubcommands([hashFile, hashPath, hashConvert]),
  Command.withExamples([{ command: "b3 hash path --json ./src", description: "print {\"path\", \"hash\"} for each path" }])
)
