/** `b3 key …`: signing keys (filled in by the signature work). */
import { Command } from "effect/cli"

export const keyCommand = Command.make("key").pipe(Command.withDescription("Generate and inspect binary-cache signing keys."))
