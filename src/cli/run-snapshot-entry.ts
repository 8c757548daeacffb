/**
 * The entry of the pipeline runner's V8 startup snapshot (dist/run.blob, built by scripts/bundle.ts
 * from dist/run-snapshot.cjs, a CommonJS bundle of this module): every module a pipeline may import
 * from b3 and Effect — the ones the library bundle has (dist/lib/modules.json: `b3`, `b3/derivation`,
 * `b3/plugin`, `effect` and its namespaces, `effect/cli`, `effect/http`, `effect/process`,
 * `@effect/platform-node`) — evaluated once when the blob is built. In a checkout, bin/b3 starts
 * `b3 run …` as `node --snapshot-blob dist/run.blob -- --argv ARGV…`: it starts from that heap instead
 * of loading, compiling and evaluating the library bundle's chunks, reads the command line as
 * run-pipeline.ts does, and the pipeline's imports of those modules get the snapshot's own objects
 * (shareSnapshotModules), at the library bundle's URLs.
 *
 * As in the CLI's snapshot (snapshot-entry.ts), nothing a run depends on is read while modules are
 * evaluated; Node modules whose state cannot be in a snapshot (node:http, node:sqlite, …) and the
 * packages left in node_modules (undici, ws) are loaded when first used (scripts/bundle-run-snapshot.ts).
 */
import { restoreIntl } from "./snapshot-prelude.ts" // first: it makes Effect's CLI modules snapshot-safe
import * as Effect from "effect"
import * as EffectCli from "effect/cli"
import * as EffectHttp from "effect/http"
import * as EffectProcess from "effect/process"
import * as PlatformNode from "@effect/platform-node"
import * as B3 from "../index.ts"
import * as B3Derivation from "../core/derivation/index.ts"
import * as B3Plugin from "../plugin.ts"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { pathToFileURL } from "node:url"
import { startupSnapshot } from "node:v8"
import { importModule, setImporter } from "../io/import-module.ts"
import { quietSqliteWarning } from "../io/quiet-warnings.ts"
import { shareSnapshotModules } from "../io/shared-modules.ts"
import { fromInvocation, runPipelineMain } from "./pipeline-main.ts"
import { parseRunArgv } from "./run-argv.ts"
import { setSnapshotUrl } from "./snapshot-runtime.ts"
import { runTimeImporter, snapshotBlob } from "./snapshot-support.ts"

/** The entry points of the library bundle (scripts/bundle-lib.ts) as this snapshot has them. */
const entries: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  "effect": Effect,
  "effect/cli": EffectCli,
  "effect/http": EffectHttp,
  "effect/process": EffectProcess,
  "@effect/platform-node": PlatformNode,
  "b3": B3,
  "b3/derivation": B3Derivation,
  "b3/plugin": B3Plugin
}
const longestFirst = Object.keys(entries).sort((a, b) => b.length - a.length)

/** A shared module's namespace: an entry point's, or one its index re-exports (`effect/Stream` is Effect's `Stream`). */
const namespaceOf = (specifier: string): Readonly<Record<string, unknown>> | undefined => {
  if (entries[specifier] !== undefined) return entries[specifier]
  const entry = longestFirst.find((e) => specifier.startsWith(`${e}/`))
  const namespace = entry === undefined ? undefined : entries[entry]![specifier.slice(entry.length + 1)]
  return typeof namespace === "object" && namespace !== null ? namespace as Record<string, unknown> : undefined
}

restoreIntl()

startupSnapshot.setDeserializeMainFunction(() => {
  const dist = dirname(snapshotBlob("dist/run.blob"))
  const bundle = join(dist, "run-snapshot.cjs")
  setSnapshotUrl(pathToFileURL(bundle).href)
  setImporter(runTimeImporter(bundle))
  // A snapshot's process.argv is [node, ARGS…], here [node, --argv, ARGV…].
  const argv = process.argv.slice(2)
  const invocation = process.argv[1] === "--argv" ? parseRunArgv(argv) : undefined
  if (invocation === undefined) {
    // Not a command line this reads: the CLI takes it, from its bundle (it says what is wrong).
    const cli = join(dist, "b3.mjs")
    process.argv = [process.argv[0]!, cli, ...argv]
    importModule(pathToFileURL(cli).href).catch((error: unknown) => {
      process.stderr.write(`b3: cannot start: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exitCode = 1
    })
    return
  }
  quietSqliteWarning()
  const modulesJson = join(dist, "lib", "modules.json")
  const relative = JSON.parse(readFileSync(modulesJson, "utf8")) as Record<string, string>
  const base = pathToFileURL(modulesJson)
  shareSnapshotModules(Object.fromEntries(Object.entries(relative).map(([specifier, file]) => [specifier, new URL(file, base).href])), namespaceOf)
  const { options, args, missing } = fromInvocation(invocation)
  runPipelineMain(options, args, missing)
})
