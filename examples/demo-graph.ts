/**
 * A small build graph for the end-to-end demo (scripts/demo.sh), declared with b3's TypeScript
 * derivation API instead of the Nix language. It needs two store paths, given in the environment:
 * a static busybox (`B3_DEMO_BUSYBOX`) and a source tree (`B3_DEMO_SRC`) with a `hello.txt`.
 *
 *   words   ← the source's words, one per line, sorted
 *   stats   ← counts from `words` (depends on words)
 *   report  ← out: a report that names both inputs' store paths; doc: a second output
 */
import { Result } from "effect"
import { derivation, storePath, str } from "b3/derivation"

const need = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`demo-graph.ts needs ${name} (a store path) in the environment`)
  return value
}

const busybox = storePath(need("B3_DEMO_BUSYBOX"))
const source = storePath(need("B3_DEMO_SRC"))
const sh = str`${busybox}/bin/sh`
const bb = str`${busybox}/bin/busybox`

const words = Result.getOrThrow(derivation({
  name: "words",
  system: "x86_64-linux",
  builder: sh,
  args: ["-c", str`${bb} mkdir -p $out && ${bb} tr -s ' ' '\\n' < ${source}/hello.txt | ${bb} sort > $out/words`]
}))

const stats = Result.getOrThrow(derivation({
  name: "stats",
  system: "x86_64-linux",
  builder: sh,
  args: ["-c", str`${bb} wc -l < ${words.outputs.out}/words > $out`]
}))

const report = Result.getOrThrow(derivation({
  name: "report",
  system: "x86_64-linux",
  builder: sh,
  outputs: ["out", "doc"],
  greeting: "built by b3 in Nix's sandbox",
  args: ["-c", str`${bb} mkdir -p $out $doc && echo "$greeting: $(${bb} cat ${stats}) words from ${words.outputs.out}" > $out/report && echo "see $out/report" > $doc/README`]
}))

export default [report]
