/**
 * The derivation attributes Nix 2.8 checks or honours when it builds, as a table of cases built by
 * `nix-build` with the sandbox on and by `b3 build` from the same `.drv` files: allowed/disallowed
 * references and requisites (store paths and output names, self-references), `outputChecks` with
 * structured attributes (maxSize, maxClosureSize, the `ignoreSelfRefs` 2.8 does not read),
 * `requiredSystemFeatures`, `exportReferencesGraph` (plain and structured, and its errors),
 * `passAsFile`, `impureEnvVars` (fixed-output only), `preferLocalBuild`, and `allowSubstitutes`.
 * A case either builds the same output in both (same path and NAR hash) or fails in both, b3's
 * message being Nix's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { addBusybox } from "../support/busybox.ts"
import { b3Bin } from "../support/b3.ts"
import { makeScratch, nixEnv, removeScratch } from "../support/nix.ts"

// Nix with ca-derivations on, so that its system features are b3's (which always has them).
const env = { ...nixEnv, NIX_CONFIG: `${nixEnv.NIX_CONFIG}\nexperimental-features = nix-command ca-derivations`, SECRET_VAR: "bar" }
const sha256Bar = "1fcgpy7vc4ammr7s17j2xq88scswkgz23dqzc04g8sx5vcp2pppw" // of the bytes "bar"

let scratch: string

interface Case {
  readonly attr: string
  readonly title: string
  /** The error Nix gives, or undefined when it builds. */
  readonly fails?: RegExp
}

const cases: ReadonlyArray<Case> = [
  { attr: "allowedRefsBad", title: "allowedReferences: a reference not allowed", fails: /output '\S+' is not allowed to refer to the following paths:(\s+\/nix\/store\/\S+)+/ },
  { attr: "allowedRefsOk", title: "allowedReferences: every reference allowed" },
  { attr: "allowedReqsBad", title: "allowedRequisites: a requisite not allowed", fails: /output '\S+' is not allowed to refer to the following paths:(\s+\/nix\/store\/\S+)+/ },
  { attr: "allowedReqsOk", title: "allowedRequisites: the closure allowed" },
  { attr: "disallowedRefsBad", title: "disallowedReferences: a forbidden reference", fails: /output '\S+' is not allowed to refer to the following paths:(\s+\/nix\/store\/\S+)+/ },
  { attr: "disallowedRefsIndirect", title: "disallowedReferences: only direct references count" },
  { attr: "disallowedReqsBad", title: "disallowedRequisites: a forbidden path in the closure", fails: /output '\S+' is not allowed to refer to the following paths:(\s+\/nix\/store\/\S+)+/ },
  { attr: "badSpecifier", title: "an illegal reference specifier", fails: /derivation contains an illegal reference specifier 'foo'/ },
  { attr: "outputName", title: "an output name as specifier (self-reference allowed as 'out')" },
  { attr: "selfRefsLegacy", title: "allowedRequisites = [] ignores self-references (legacy attributes)" },
  { attr: "selfRefsStructured", title: "outputChecks.allowedRequisites = [] counts self-references (2.8 reads no ignoreSelfRefs)", fails: /output '\S+' is not allowed to refer to the following paths:(\s+\/nix\/store\/\S+)+/ },
  { attr: "maxSizeBad", title: "outputChecks.maxSize exceeded", fails: /path '\S+' is too large at \d+ bytes; limit is 10 bytes/ },
  { attr: "maxSizeOk", title: "outputChecks.maxSize kept" },
  { attr: "maxClosureBad", title: "outputChecks.maxClosureSize exceeded", fails: /closure of path '\S+' is too large at \d+ bytes; limit is 1000 bytes/ },
  { attr: "multiOutputChecks", title: "outputChecks per output (dev may not refer to out)", fails: /output '\S+' is not allowed to refer to the following paths:(\s+\/nix\/store\/\S+)+/ },
  { attr: "featuresBad", title: "requiredSystemFeatures this machine lacks", fails: /a 'x86_64-linux' with features \{big-parallel, gpu\} is required to build '\S+', but I am a 'x86_64-linux' with features \{[^}]*\}/ },
  { attr: "featuresOk", title: "requiredSystemFeatures this machine has" },
  { attr: "exportGraph", title: "exportReferencesGraph (a file per name)" },
  { attr: "exportGraphStructured", title: "exportReferencesGraph with structured attributes (JSON in .attrs.json)" },
  { attr: "exportOdd", title: "exportReferencesGraph with an odd number of tokens", fails: /odd number of tokens in 'exportReferencesGraph': 'g'/ },
  { attr: "exportNotInput", title: "exportReferencesGraph of a path that is not an input", fails: /cannot export references of path '\S+' because it is not in the input closure of the derivation/ },
  { attr: "passAsFile", title: "passAsFile" },
  { attr: "impureVarsFixed", title: "impureEnvVars of a fixed-output derivation pass through" },
  { attr: "impureVarsIgnored", title: "impureEnvVars of another derivation are ignored" },
  { attr: "preferLocal", title: "preferLocalBuild" }
]

const expression = (bbPath: string) => `
let
  bb = builtins.storePath ${bbPath};
  B = "\${bb}/bin/busybox";
  mk = name: script: attrs: derivation ({ inherit name; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = [ "-c" script ]; } // attrs);
  # With structured attributes there is no $out: read it from .attrs.json.
  sOut = ''out=$(\${B} sed -n 's/.*"outputs":{[^}]*"out":"\\([^"]*\\)".*/\\1/p' .attrs.json)'';
  dep = mk "dep" "echo dep > $out" {};
  mid = mk "mid" "echo \${dep} > $out" {};
  refs = "echo \${bb} \${dep} > $out";
in rec {
  inherit dep mid;
  allowedRefsBad = mk "allowed-refs-bad" refs { allowedReferences = [ dep ]; };
  allowedRefsOk = mk "allowed-refs-ok" refs { allowedReferences = [ dep bb ]; };
  allowedReqsBad = mk "allowed-reqs-bad" "echo \${mid} > $out" { allowedRequisites = [ mid ]; };
  allowedReqsOk = mk "allowed-reqs-ok" "echo \${mid} > $out" { allowedRequisites = [ mid dep ]; };
  disallowedRefsBad = mk "disallowed-refs-bad" refs { disallowedReferences = [ bb ]; };
  disallowedRefsIndirect = mk "disallowed-refs-indirect" "echo \${mid} > $out" { disallowedReferences = [ dep ]; };
  disallowedReqsBad = mk "disallowed-reqs-bad" "echo \${mid} > $out" { disallowedRequisites = [ dep ]; };
  badSpecifier = mk "bad-specifier" refs { allowedReferences = [ "foo" ]; };
  outputName = mk "output-name" "echo $out > $out" { allowedReferences = [ "out" ]; };
  selfRefsLegacy = mk "self-refs-legacy" "echo $out > $out" { allowedRequisites = [ ]; };
  selfRefsStructured = mk "self-refs-structured" "\${sOut}; echo $out > $out" {
    __structuredAttrs = true; outputChecks.out = { allowedRequisites = [ ]; ignoreSelfRefs = true; }; };
  maxSizeBad = mk "max-size-bad" "\${sOut}; \${refs}" { __structuredAttrs = true; outputChecks.out.maxSize = 10; };
  maxSizeOk = mk "max-size-ok" "\${sOut}; \${refs}" { __structuredAttrs = true; outputChecks.out.maxSize = 100000; };
  maxClosureBad = mk "max-closure-bad" "\${sOut}; \${refs}" { __structuredAttrs = true; outputChecks.out.maxClosureSize = 1000; };
  multiOutputChecks = mk "multi-output-checks" ''
    out=$(\${B} sed -n 's/.*"outputs":{[^}]*"out":"\\([^"]*\\)".*/\\1/p' .attrs.json)
    dev=$(\${B} sed -n 's/.*"outputs":{"dev":"\\([^"]*\\)".*/\\1/p' .attrs.json)
    echo $out > $dev; echo \${dep} > $out
  '' { __structuredAttrs = true; outputs = [ "out" "dev" ]; outputChecks = { out.allowedReferences = [ dep ]; dev.disallowedReferences = [ "out" ]; }; };
  featuresBad = mk "features-bad" "echo > $out" { requiredSystemFeatures = [ "gpu" "big-parallel" ]; };
  featuresOk = mk "features-ok" "echo > $out" { requiredSystemFeatures = [ "big-parallel" ]; };
  exportGraph = mk "export-graph" "\${B} cat g m > $out" { exportReferencesGraph = [ "g" mid "m" bb ]; };
  exportGraphStructured = mk "export-graph-structured" "\${sOut}; \${B} cp .attrs.json $out" {
    __structuredAttrs = true; exportReferencesGraph.g = [ mid ]; };
  exportOdd = mk "export-odd" "echo > $out" { exportReferencesGraph = [ "g" ]; };
  exportNotInput = mk "export-not-input" "echo > $out" { exportReferencesGraph = [ "g" (builtins.unsafeDiscardStringContext "\${dep}") ]; };
  passAsFile = mk "pass-as-file" "\${B} cat $bigPath > $out; echo $big >> $out" { big = "a value\\nwith lines"; passAsFile = [ "big" ]; };
  impureVarsFixed = mk "impure-vars-fixed" "echo -n $SECRET_VAR > $out" {
    impureEnvVars = [ "SECRET_VAR" ]; outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "${sha256Bar}"; };
  impureVarsIgnored = mk "impure-vars-ignored" "echo x$SECRET_VAR > $out" { impureEnvVars = [ "SECRET_VAR" ]; };
  preferLocal = mk "prefer-local" "echo local > $out" { preferLocalBuild = true; };
  substitutable = mk "substitutable" "echo BUILT-substitutable >&2; echo s > $out" {};
  notSubstitutable = mk "not-substitutable" "echo BUILT-not-substitutable >&2; echo n > $out" { allowSubstitutes = false; };
}`

const run = (cmd: string, argv: ReadonlyArray<string>) => {
  const r = spawnSync(cmd, argv, { env, maxBuffer: 1 << 28 })
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() }
}
const must = (r: { status: number; stdout: string; stderr: string }) => { if (r.status !== 0) throw new Error(r.stderr); return r }
const normalise = (s: string) => s.replace(/\s+/g, " ").trim()

const file = () => join(scratch, "checks.nix")
const instantiate = (root: string, attr: string) => must(run("nix-instantiate", ["--store", root, file(), "-A", attr])).stdout.trim()
const nixBuild = (root: string, attr: string, extra: ReadonlyArray<string> = []) =>
  run("nix-build", ["--store", root, file(), "-A", attr, "--no-out-link", "--option", "sandbox", "true", "--option", "substituters", "", ...extra])
const b3Build = (root: string, drv: string, extra: ReadonlyArray<string> = []) =>
  run(b3Bin, ["build", "--store", `local?root=${root}`, "--print-build-logs", ...extra, drv])
const narHash = (root: string, path: string) =>
  (JSON.parse(must(run("nix", ["path-info", "--store", root, "--json", path])).stdout) as Array<{ narHash: string }>)[0]!.narHash

beforeAll(() => {
  scratch = makeScratch("b3-checks-")
  const bb = addBusybox(join(scratch, "nix"))
  expect(addBusybox(join(scratch, "b3"))).toBe(bb)
  writeFileSync(file(), expression(bb))
}, 60_000)
afterAll(() => removeScratch(scratch))

describe("derivation attributes Nix checks: b3 build vs nix-build (sandbox = true)", () => {
  const nixRoot = () => join(scratch, "nix")
  const b3Root = () => join(scratch, "b3")

  it.each(cases.map((c) => [c.title, c] as const))("%s", (_, c) => {
    const drv = instantiate(b3Root(), c.attr)
    expect(instantiate(nixRoot(), c.attr)).toBe(drv)
    const theirs = nixBuild(nixRoot(), c.attr)
    const ours = b3Build(b3Root(), drv)
    if (c.fails === undefined) {
      expect(theirs.status, theirs.stderr).toBe(0)
      expect(ours.status, ours.stderr).toBe(0)
      const out = theirs.stdout.trim().split("\n").pop()!
      expect(ours.stdout.trim().split("\n")).toContain(out)
      expect(narHash(b3Root(), out)).toBe(narHash(nixRoot(), out))
      return
    }
    expect(theirs.status).not.toBe(0)
    expect(ours.status, ours.stderr).toBe(5)
    const message = c.fails.exec(theirs.stderr)
    expect(message, theirs.stderr).not.toBeNull()
    expect(normalise(ours.stderr)).toContain(normalise(message![0]))
  }, 120_000)

  it("allowSubstitutes = false: built even when a substituter has it (Nix alike); otherwise substituted", () => {
    const keys = join(scratch, "keys")
    must(run("mkdir", ["-p", keys]))
    must(run("nix-store", ["--generate-binary-cache-key", "checks-1", join(keys, "sk"), join(keys, "pk")]))
    const pk = must(run("cat", [join(keys, "pk")])).stdout.trim()
    const cache = `file://${join(scratch, "cache")}`
    const drvs = ["substitutable", "notSubstitutable"].map((attr) => instantiate(b3Root(), attr))
    for (const drv of drvs) {
      const out = must(b3Build(b3Root(), drv)).stdout.trim()
      must(run(b3Bin, ["copy", "--no-check-sigs", "--from", `local?root=${b3Root()}`, "--to", `${cache}?secret-key=${join(keys, "sk")}`, out]))
    }
    const fresh = join(scratch, "fresh")
    addBusybox(fresh)
    const nixFresh = join(scratch, "nix-fresh")
    addBusybox(nixFresh)
    for (const [attr, built] of [["substitutable", false], ["notSubstitutable", true]] as const) {
      const drv = instantiate(fresh, attr)
      instantiate(nixFresh, attr)
      const ours = must(b3Build(fresh, drv, ["--substituters", cache, "--trusted-public-keys", pk]))
      const theirs = must(nixBuild(nixFresh, attr, ["--option", "substituters", cache, "--option", "trusted-public-keys", pk]))
      expect(/> BUILT-/.test(ours.stderr), attr).toBe(built)
      expect(/^building '/m.test(theirs.stderr), attr).toBe(built)
      expect(ours.stdout.trim()).toBe(theirs.stdout.trim())
    }
  }, 300_000)
})
