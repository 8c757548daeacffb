/** `b3 config show`: the effective configuration and where each setting comes from. */
import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { config as currentConfig } from "../config.ts"
import { outputMode, printJson, UsageError } from "../output.ts"

const show = Command.make("show", {}, () => Effect.gen(function*() {
  const config = currentConfig()
  if ((yield* outputMode).json) yield* printJson(config)
  else {
  yield* Console.log(`config file:          ${config.file ?? "(none: ./b3.json or ~/.config/b3/config.json)"}`)
  yield* Console.log(`store:                ${config.store || "(none: give --store)"}  (${config.sources.store})`)
  yield* Console.log(`substituters:         ${config.substituters.join(" ") || "(none)"}  (${config.sources.substituters})`)
  yield* Console.log(`trusted-public-keys:  ${config.trustedPublicKeys.join(" ") || "(none)"}  (${config.sources.trustedPublicKeys})`)
  yield* Console.log(`plugins:              ${config.plugins.join(" ") || "(none)"}  (${config.sources.plugins})`)
  }
  if (config.problems.length > 0) return yield* new UsageError({ reason: config.problems.join("; ") })
})).pipe(
  Command.withDescription("Print the effective configuration (defaults < config file < B3_* env vars < flags); exits 2 if the config file is malformed, saying what is wrong."),
  Command.withExamples([
    { command: "b3 config show", description: "each setting and where it comes from" },
    { command: "B3_STORE=/tmp/r b3 config show --json", description: "{\"store\", \"substituters\", \"trustedPublicKeys\", \"plugins\", \"sources\", \"file\"?, \"problems\"}" }
  ]))

export const configCommand = Command.make("config").pipe(
  Command.withDescription("Show b3's configuration."),
  Command.withSubcommands([show]),
  Command.withExamples([{ command: "echo '{\"store\": \"/tmp/r\"}' > b3.json && b3 config show", description: "b3.json in the current directory sets defaults" }])
)
