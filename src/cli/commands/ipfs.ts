/** `b3 ipfs …`: commands for IPFS stores (filled in with the IPFS layer). */
import { Effect } from "effect"
import { Command } from "effect/cli"
import { Unsupported } from "../../services/errors.ts"
import { jsonFlag, storeFlag } from "../flags.ts"

const root = Command.make("root", { store: storeFlag, json: jsonFlag }, () =>
  Effect.fail(new Unsupported({ store: "ipfs://", operation: "ipfs root" }))
).pipe(Command.withDescription("Print the root CID of an IPFS store (its current version)."))

export const ipfsCommand = Command.make("ipfs").pipe(
  Command.withDescription("IPFS stores."),
  Command.withSubcommands([root])
)
