/**
 * The process a pipeline runs in. It runs from b3's library bundle (dist/lib/, scripts/bundle-lib.ts)
 * or unbundled modules (the sources in a checkout, lib/ compiled from them in the npm package), so the
 * pipeline's `import … from "b3"` and `"effect"` are the very modules its services and errors come from
 * (the CLI bundle has its own copy of both; errors from one copy are not `instanceof` the other's
 * classes). It is started two ways:
 *
 *   node dist/lib/run-pipeline.mjs --argv ARGV…     by the launcher (bin/b3, bin/b3.cjs) for `b3 run …`:
 *                                                    ARGV is b3's command line, read here (run-argv.ts);
 *                                                    one it does not know (help, a bad flag) goes to the
 *                                                    CLI in this process, which says what is wrong
 *   node src/cli/run-pipeline.ts '{"pipeline":…,"store":…,"cache":…,"json":…,"quiet":…,"verbose":…}' ARGS…
 *                                                    by the CLI's `b3 run` (commands/run.ts)
 *
 * In a checkout, bin/b3 starts the runner from its startup snapshot instead when there is one
 * (run-snapshot-entry.ts); pipeline-main.ts is what both run.
 *
 * A pipeline outside this package can still import "b3", "b3/derivation", "effect" and
 * "@effect/platform-node": if they do not resolve from where it is, they resolve from here.
 */
import { existsSync, readFileSync } from "node:fs"
import { extname } from "node:path"
import { fileURLToPath } from "node:url"
import { quietSqliteWarning } from "../io/quiet-warnings.ts"
import { shareBundledModules, shareModules } from "../io/shared-modules.ts"
import { parseRunArgv } from "./run-argv.ts"
import type { RunOptions } from "./pipeline-main.ts"

// Run from the library bundle (dist/lib/run-pipeline.mjs), its modules.json lists the modules a
// pipeline shares with it; run from the sources, b3's own package does.
const modulesJson = new URL("./modules.json", import.meta.url)
const bundled = existsSync(fileURLToPath(modulesJson))

/** Before anything imports b3 or Effect: the pipeline and plugins are to get the runner's copies. */
const share = (): void => {
  quietSqliteWarning()
  if (bundled) {
    const relative = JSON.parse(readFileSync(modulesJson, "utf8")) as Record<string, string>
    shareBundledModules(Object.fromEntries(Object.entries(relative).map(([specifier, file]) => [specifier, new URL(file, modulesJson).href])))
  } else shareModules(new URL("../../package.json", import.meta.url).href)
}

if (process.argv[2] === "--argv") {
  const argv = process.argv.slice(3)
  const invocation = parseRunArgv(argv)
  if (invocation === undefined) {
    // Not a command line this reads: the CLI's (from its bundle beside this one, or the sources) takes it.
    const cli = bundled ? new URL("../b3.mjs", import.meta.url) : new URL(`./main${extname(fileURLToPath(import.meta.url))}`, import.meta.url)
    process.argv = [process.argv[0]!, fileURLToPath(cli), ...argv]
    await import(cli.href)
  } else {
    share()
    const { fromInvocation, runPipelineMain } = await import("./pipeline-main.ts")
    const { options, args, missing } = fromInvocation(invocation)
    runPipelineMain(options, args, missing)
  }
} else {
  share()
  const { runPipelineMain } = await import("./pipeline-main.ts")
  runPipelineMain(JSON.parse(process.argv[2] ?? "{}") as RunOptions, process.argv.slice(3))
}
