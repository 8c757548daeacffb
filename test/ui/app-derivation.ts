/**
 * One derivation for the web view's browser test (`b3 build test/ui/app-derivation.ts`): "app", built
 * by busybox's sh, whose output names the generated closure's root (so the root's closure is in the
 * app's) and whose build prints a few lines to its log. Store paths come from the environment:
 * B3_UI_BUSYBOX and B3_UI_ROOT.
 */
import { Result } from "effect"
import { derivation, storePath, str } from "b3/derivation"

const need = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`app-derivation.ts needs ${name} (a store path) in the environment`)
  return value
}

const busybox = storePath(need("B3_UI_BUSYBOX"))
const root = storePath(need("B3_UI_ROOT"))

export default [Result.getOrThrow(derivation({
  name: "app-1.0",
  system: "x86_64-linux",
  builder: str`${busybox}/bin/sh`,
  args: ["-c", str`echo "building app-1.0 against ${root}"; echo "step 1 of 2: configure"; echo "step 2 of 2: install"; echo "uses ${root}" > $out; echo "app-1.0 built"`]
}))]
