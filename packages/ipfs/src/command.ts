/** `b3 ipfs …`: commands for IPFS stores, which the b3 CLI offers when this plugin is installed. */
import { Console, Effect, Result } from "effect"
import { Command } from "effect/cli"
import { BadStoreUri, parseStoreUri, storeFlag, outputMode, printJson } from "b3/plugin"
import { ipfsOptionsFromUri, loadIpfsStore } from "./opener.ts"

const root = Command.make("root", { store: storeFlag }, ({ store }) => Effect.scoped(Effect.gen(function*() {
  const uri = parseStoreUri(store)
  if (Result.isFailure(uri)) return yield* uri.failure
  if (uri.success.scheme !== "ipfs") return yield* new BadStoreUri({ uri: store, reason: "'b3 ipfs root' needs an ipfs:// store (ipfs://?repo=DIR)" })
  const options = yield* ipfsOptionsFromUri(uri.success)
  const module = yield* loadIpfsStore()
  const opened = yield* module.openIpfsStore(options)
  const cid = opened.root()
  const mode = yield* outputMode
  yield* mode.json ? printJson({ store, root: cid }) : Console.log(cid)
}))).pipe(
  Command.withDescription("Print the root CID of an IPFS store (its current version), which another node opens read-only as ipfs://<CID>."),
  Command.withExamples([{ command: "b3 ipfs root --store 'ipfs://?repo=/var/b3/ipfs'", description: "the version to hand to a peer" }])
)

export const ipfsCommand = Command.make("ipfs").pipe(
  Command.withDescription("IPFS stores: ipfs://?repo=DIR (read and write, on disk) and ipfs://<root CID> (read-only, fetched from peers)."),
  Command.withSubcommands([root]),
  Command.withExamples([
    { command: "b3 copy --from local --to 'ipfs://?repo=/var/b3/ipfs' --secret-key key.sec /nix/store/…-hello", description: "push a closure into an IPFS store" },
    { command: "b3 ipfs root --store 'ipfs://?repo=/var/b3/ipfs'", description: "the root CID a peer opens as ipfs://<CID>" }
  ])
)
