/**
 * What a process started from one of b3's V8 startup snapshots needs when it starts (the CLI's,
 * snapshot-entry.ts; the pipeline runner's, run-snapshot-entry.ts).
 */
import { resolve } from "node:path"
import * as vm from "node:vm"

/**
 * `import()` for the run. Code compiled into the snapshot has no module loader behind its import(), so
 * this one is compiled now with Node's default loader. That option (vm.USE_MAIN_CONTEXT_DEFAULT_LOADER)
 * is marked experimental: its warning, printed on the first import, is not passed on to b3's stderr.
 */
export const runTimeImporter = (bundle: string) => {
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

/** The blob this process started from: bin/b3 runs `node --snapshot-blob BLOB -- ARGS…`. */
export const snapshotBlob = (fallback: string): string => {
  const args = process.execArgv
  const at = args.indexOf("--snapshot-blob")
  const given = at >= 0 ? args[at + 1] : args.find((a) => a.startsWith("--snapshot-blob="))?.slice("--snapshot-blob=".length)
  return resolve(given ?? fallback)
}
