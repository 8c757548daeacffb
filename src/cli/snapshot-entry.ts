/**
 * The entry of the CLI's V8 startup snapshot. scripts/bundle.ts bundles it with the whole CLI into
 * dist/b3-snapshot.cjs and builds dist/b3.blob from that with `node --build-snapshot`, which evaluates
 * every module of the CLI (Effect included) once; bin/b3 then runs `node --snapshot-blob dist/b3.blob --
 * ARGS…`, which starts from that heap instead of compiling and evaluating the modules again.
 *
 * So nothing a run depends on may be read while modules are evaluated: argv, env (HOME, XDG_*, B3_*),
 * cwd, the terminal, the pid, the time, random state. main.ts reads argv when `main()` is called and
 * config.ts reads the configuration on first use; test/cli/snapshot.test.ts checks that a run sees its
 * own. (V8 reseeds Math.random in every process started from a snapshot.) Modules that backends load on
 * first use (`import("./local/opener.ts")` and the like) are in the bundle but evaluated only when a run
 * needs them; the IPFS packages, undici and ws are loaded from node_modules then (snapshot-runtime.ts).
 */
import { restoreIntl } from "./snapshot-prelude.ts" // first: it makes Effect's CLI modules snapshot-safe
import { dirname, join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { startupSnapshot } from "node:v8"
import * as vm from "node:vm"
import { setImporter } from "../io/import-module.ts"
import { main } from "./main.ts"
import { setSnapshotUrl } from "./snapshot-runtime.ts"

/**
 * `import()` for the run. Code compiled into the snapshot has no module loader behind its import(), so
 * this one is compiled now with Node's default loader. That option (vm.USE_MAIN_CONTEXT_DEFAULT_LOADER)
 * is marked experimental: its warning, printed on the first import, is not passed on to b3's stderr.
 */
const runTimeImporter = (bundle: string) => {
  const load = vm.compileFunction("return import(specifier)", ["specifier"], {
    filename: bundle, // bare specifiers resolve from here, i.e. from the project's node_modules
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER
  }) as (specifier: string) => Promise<unknown>
  return (specifier: string): Promise<unknown> => {
    const emitWarning = process.emitWarning
    process.emitWarning = ((warning: string | Error, ...rest: Array<never>) => {
      if (!String(warning).includes("USE_MAIN_CONTEXT_DEFAULT_LOADER")) emitWarning.call(process, warning, ...rest)
    }) as typeof process.emitWarning
    try {
      return load(specifier)
    } finally {
      process.emitWarning = emitWarning
    }
  }
}

restoreIntl()

/** The blob this process started from: bin/b3 runs `node --snapshot-blob BLOB -- ARGS…`. */
const snapshotBlob = (): string => {
  const args = process.execArgv
  const at = args.indexOf("--snapshot-blob")
  const given = at >= 0 ? args[at + 1] : args.find((a) => a.startsWith("--snapshot-blob="))?.slice("--snapshot-blob=".length)
  return resolve(given ?? "dist/b3.blob")
}

startupSnapshot.setDeserializeMainFunction(() => {
  const bundle = join(dirname(snapshotBlob()), "b3-snapshot.cjs")
  setSnapshotUrl(pathToFileURL(bundle).href)
  setImporter(runTimeImporter(bundle))
  // A snapshot's process.argv is [node, ARGS…]: give it the [node, script, ARGS…] that main() and Node programs expect.
  process.argv.splice(1, 0, bundle)
  main()
})
