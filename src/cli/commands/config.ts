/** `b3 config show`: the effective configuration and where each setting comes from. */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { config as currentConfig } from "../config.ts"
import { outputMode, printJson } from "../output.ts"

const show = Command.make("show", {}, () => Effect.gen(function*() {
  const config = currentConfig()
  if ((yield* outputMode).json) return yield* printJson(config)
  yield* Console.log(`config file:          ${config.file ?? "(none: ./b3.json or ~/.config/b3/config.json)"}`)
  yield* Console.log(`store:                ${config.store}  (${config.sources.store})`)
  yield* Console.log(`substituters:         ${config.substituters.join(" ") || "(none)"}  (${config.sources.substituters})`)
  yield* Console.log(`trusted-public-keys:  ${config.trustedPublicKeys.join(" ") || "(none)"}  (${config.sources.trustedPublicKeys})`)
  for (const problem of config.problems) yield* Console.error(`warning: ${problem}`)
})).pipe(
  Command.withDescription("Print the effective configuration (defaults < config file < B3_* env vars < flags)."),
  Command.withExamples([
    { command: "b3 config show", description: "each setting and where it comes from" },
    { command: "B3_STORE=/tmp/r b3 config show --json", description: "{\"store\", \"substituters\", \"trustedPublicKeys\", \"sources\", \"file\"?, \"problems\"}" }
  ]))

export const configCommand = Command.make("config").pipe(
  Command.withDescription("Show b3's configuration."),
  Command.withSubcommands([show]),
  Command.withExamples([{ command: "echo '{\"store\": \"/tmp/r\"}' > b3.json && b3 config show", description: "b3.json in the current directory sets defaults" }])
)
