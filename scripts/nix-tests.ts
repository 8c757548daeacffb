/**
 * Runs Nix 2.8.0's test scripts against b3 daemon and prints a table (pass/fail/skip, time):
 * `node scripts/nix-tests.ts [SCRIPT…]` (default: all of tests/local.mk's list). Needs
 * scripts/fetch-nix-tests.sh to have run. `--log` prints each failing script's output.
 */
import { allScripts, haveNixTests, prepare, runScript } from "../test/nix-suite/harness.ts"

if (!haveNixTests()) {
  console.error("Nix's tests are not fetched: run scripts/fetch-nix-tests.sh")
  process.exit(2)
}
const args = process.argv.slice(2)
const showLog = args.includes("--log")
const scripts = args.filter((a) => !a.startsWith("--"))
const prepared = prepare()
try {
  for (const script of scripts.length > 0 ? scripts : allScripts()) {
    const o = runScript(prepared, script)
    console.log(`| ${o.script} | ${o.result} | ${o.status} | ${o.seconds.toFixed(1)} |`)
    if (showLog && o.result === "fail") console.log(o.log.split("\n").slice(-40).map((l) => `    ${l}`).join("\n"))
  }
} finally {
  prepared.cleanup()
}
