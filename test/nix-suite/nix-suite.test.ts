/**
 * Nix 2.8.0's own test scripts against `b3 daemon` (see harness.ts). The scripts here are those
 * that exercise the store and builds and pass; each must keep passing. The whole suite, with the
 * reason for every failure and skip, is run by `node scripts/nix-tests.ts` (table in README).
 * Needs Nix's tests fetched (scripts/setup.sh runs scripts/fetch-nix-tests.sh).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { haveNixTests, prepare, runScript } from "./harness.ts"

/** Scripts of tests/local.mk that use the store (adding, querying, copying, exporting, GC, optimising) and builds through the daemon. */
export const mustPass = [
  "add.sh", "local-store.sh", "export.sh", "misc.sh", "store-ping.sh", "describe-stores.sh", "dependencies.sh",
  "build.sh", "build-dry.sh", "nix-build.sh", "multiple-outputs.sh", "pass-as-file.sh", "import-derivation.sh",
  "readfile-context.sh", "why-depends.sh", "case-hack.sh", "secure-drv-outputs.sh", "signing.sh", "fixed.sh",
  "check-reqs.sh", "export-graph.sh", "ca/build.sh", "gc.sh", "ca/gc.sh", "gc-runtime.sh", "optimise-store.sh",
  "ca/nix-copy.sh", "ca/signatures.sh", "ca/nix-run.sh", "nix-profile.sh", "post-hook.sh", "ca/post-hook.sh", "flake-local-settings.sh"
]

describe("Nix 2.8.0's tests against b3 daemon", () => {
  let prepared: ReturnType<typeof prepare> | undefined
  beforeAll(() => {
    if (!haveNixTests()) throw new Error("Nix 2.8.0's tests are not fetched: run scripts/fetch-nix-tests.sh (scripts/setup.sh does)")
    prepared = prepare()
  })
  afterAll(() => prepared?.cleanup())

  for (const script of mustPass) {
    it(script, () => {
      const outcome = runScript(prepared!, script)
      expect(outcome.result, outcome.log.split("\n").slice(-30).join("\n")).toBe("pass")
    }, 180_000)
  }
})
