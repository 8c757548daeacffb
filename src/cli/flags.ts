/** Flag constructors shared by the command groups. */
import { Flag } from "effect/cli"
import { configDefault } from "./config.ts"

/** An on/off switch that defaults to off (a name that is already a negation, like `no-check-sigs`, gets no `--no-…` form). */
export const switchFlag = (name: string, description: string) => {
  const flag = Flag.Boolean(name).pipe(Flag.withDefault(false), Flag.withDescription(description))
  return name.startsWith("no-") ? flag.pipe(Flag.withoutNegation) : flag
}

/** `--store URI`: the store a command works on (default: $B3_STORE, else the local store). */
export const storeFlag = Flag.String("store").pipe(
  Flag.withDefault(configDefault((c) => c.store)),
  Flag.withDescription("store URI: local (this machine's /nix/store), local?root=DIR, DIR, memory://, file:///DIR, http://HOST/… (default: config 'store' or $B3_STORE; there is no other default)")
)

/** `--substituters 'URI …'`: stores to take outputs from before building. */
export const substitutersFlag = Flag.String("substituters").pipe(
  Flag.withDefault(configDefault((c) => c.substituters.join(" "))),
  Flag.withDescription("space-separated store URIs to substitute from (default: config 'substituters' or $B3_SUBSTITUTERS)")
)

/**
 * A command's own `--json` switch. The CLI's commands read the global `--json` instead (see
 * output.ts: `yield* outputMode`); where a command declares this, its own flag wins at its level.
 */
export const jsonFlag = switchFlag("json", "print JSON for scripts instead of text")
