/** `b3 drv …`: derivation tools (filled in by the derivation work). */
import { Command } from "effect/cli"

export const drvCommand = Command.make("drv").pipe(Command.withDescription("Inspect derivations (.drv files)."))
