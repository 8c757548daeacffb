/** `b3 narinfo …`: narinfo tools (filled in by the signature work). */
import { Command } from "effect/cli"

export const narinfoCommand = Command.make("narinfo").pipe(Command.withDescription("Check .narinfo files."))
