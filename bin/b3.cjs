#!/usr/bin/env node
// The `b3` command of the npm package: runs the CLI bundle the package ships (dist/npm/b3.mjs) on
// the Node it is started with. (A checkout runs bin/b3 instead, on its own Node 24 with the startup
// snapshot.) Plain CommonJS, so that an old Node gets as far as saying what it needs.
"use strict"
// 22.18: the first Node 22 that runs TypeScript modules (build modules, pipelines) without a flag;
// it also has node:sqlite, zstd and module.registerHooks, which b3 needs.
const minimum = [22, 18, 0]
const current = process.versions.node.split(".").map(Number)
const compare = (a, b) => (a[0] - b[0]) || (a[1] - b[1]) || (a[2] - b[2])
if (compare(current, minimum) < 0) {
  process.stderr.write(`b3: needs Node.js ${minimum.join(".")} or newer, and this is Node.js ${process.versions.node} (${process.execPath}); install a current Node.js (22 LTS or later: https://nodejs.org/en/download) and run b3 again\n`)
  process.exit(1)
}
// V8's compile cache makes every start after the first faster; the environment variable passes it on
// to the process `b3 run` starts a pipeline in.
const cache = require("node:module").enableCompileCache?.()
if (cache && cache.directory && !process.env.NODE_COMPILE_CACHE) process.env.NODE_COMPILE_CACHE = cache.directory
// `b3 run …` starts the pipeline runner (the library bundle's) in this process, without the CLI: it
// reads the command line itself (src/cli/run-argv.ts) and hands one it does not know to the CLI. Help,
// version, completions and the wizard go to the CLI from here.
const startsRun = (args) => {
  let at = 0
  while (at < args.length && /^(--json|--quiet|-q|--verbose|--log-level(=.*)?)$/.test(args[at])) at += args[at] === "--log-level" ? 2 : 1
  if (args[at] !== "run") return false
  const end = args.indexOf("--")
  return !(end < 0 ? args : args.slice(0, end)).some((a) => /^(--help|-h|--version|-v|--wizard|--completions(=.*)?)$/.test(a))
}
const args = process.argv.slice(2)
const entry = startsRun(args) ? "../dist/npm/lib/run-pipeline.mjs" : "../dist/npm/b3.mjs"
if (entry !== "../dist/npm/b3.mjs") process.argv = [process.argv[0], require.resolve(entry), "--argv", ...args]
import(entry).catch((error) => {
  process.stderr.write(`b3: cannot start: ${error && error.message ? error.message : String(error)}\n`)
  process.exit(1)
})
