/** `b3 nar …`: NAR tools (filled in by the streaming NAR work). */
import { Command } from "effect/cli"

export const narCommand = Command.make("nar").pipe(Command.withDescription("Create, inspect and unpack NAR archives."))
