/** `b3 config show`: the effective configuration and where each setting comes from. */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { config } from "../config.ts"
import { jsonFlag } from "../flags.ts"

const show = Command.make("show", { json: jsonFlag }, (args) => Effect.gen(function*() {
  if (args.json) {
    yield* Console.log(JSON.stringify(config))
    return
  }
  yield* Console.log(`config file:          ${config.file ?? "(none: ./b3.json or ~/.config/b3/config.json)"}`)
  yield* Console.log(`store:                ${config.store}  (${config.sources.store})`)
  yield* Console.log(`substituters:         ${config.substituters.join(" ") || "(none)"}  (${config.sources.substituters})`)
  yield* Console.log(`trusted-public-keys:  ${config.trustedPublicKeys.join(" ") || "(none)"}  (${config.sources.trustedPublicKeys})`)
  for (const problem of config.problems) yield* Console.error(`warning: ${problem}`)
})).pipe(Command.withDescription("Print the effective configuration (defaults < config file < B3_* env vars < flags)."))

export const configCommand = Command.make("config").pipe(
  Command.withDescription("Show b3's configuration."),
  Command.withSubcommands([show])
)
