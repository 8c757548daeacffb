/** Flag constructors shared by the command groups. */
import { Flag } from "effect/cli"

/** An on/off switch that defaults to off. */
export const switchFlag = (name: string, description: string) =>
  Flag.Boolean(name).pipe(Flag.withDefault(false), Flag.withDescription(description))
