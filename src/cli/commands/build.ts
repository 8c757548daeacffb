/** `b3 build` and `b3 log` (filled in by the builder work). */
import { Command } from "effect/cli"

export const buildCommand = Command.make("build").pipe(Command.withDescription("Build derivations in the sandbox."))
export const logCommand = Command.make("log").pipe(Command.withDescription("Show the build log of a derivation."))
