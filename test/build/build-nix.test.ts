/**
 * Differential: the same `.drv` files (from nix-instantiate) built by `nix-build` with the sandbox
 * on, in one scratch store, and by `b3 build` in another, give the same output paths, the same NAR
 * hashes, references and content addresses. Nix then accepts b3's store as its own (verify with
 * contents). Failures: a wrong fixed-output hash is reported with both hashes as Nix does, a failing
 * builder stops its dependents and (with --keep-going) not independent builds, and the log is kept.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { addBusybox } from "../support/busybox.ts"
import { b3, runB3 } from "../support/b3.ts"
import { makeScratch, nix, nixEnv, removeScratch } from "../support/nix.ts"

let scratch: string
let nixRoot: string
let b3Root: string
let bb: string
let fodRecursiveHash: string

/** The derivations under test, as one Nix file (busybox is the only input besides each other). */
const expression = (bbPath: string, recursiveHash: string) => `
let
  bb = builtins.storePath ${bbPath};
  mk = name: script: attrs: derivation ({ inherit name; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = [ "-c" script ]; } // attrs);
in rec {
  plain = mk "plain" "echo hello > $out" {};
  multi = mk "multi" "\${bb}/bin/busybox mkdir -p $out $dev && echo lib > $out/lib && echo $out > $dev/where && \${bb}/bin/busybox chmod +x $out/lib" { outputs = [ "out" "dev" ]; };
  dependent = mk "dependent" "\${bb}/bin/busybox cat \${plain} \${multi.dev}/where > $out" {};
  structured = mk "structured" ''
    out=$(\${bb}/bin/busybox sed -n 's/.*"outputs":{"out":"\\([^"]*\\)".*/\\1/p' .attrs.json)
    \${bb}/bin/busybox mkdir $out && \${bb}/bin/busybox cp .attrs.json .attrs.sh $out/
  '' { __structuredAttrs = true; greeting = "hi"; numbers = [ 1 2 3 ]; nested = { a = true; b = null; }; };
  fodFlat = mk "fod-flat" "echo -n fixed > $out" { outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "${sha256Fixed}"; };
  fodRecursive = mk "fod-recursive" "\${bb}/bin/busybox mkdir $out && echo -n fixed > $out/f && \${bb}/bin/busybox ln -s f $out/link" {
    outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "${recursiveHash}"; };
  paths = mk "paths" "echo $out \${dependent} \${fodRecursive} \${bb} > $out" {};
  wrongHash = mk "wrong-hash" "echo -n other > $out" { outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "${sha256Fixed}"; };
  failing = mk "failing" "echo about to fail; echo details on stderr >&2; exit 3" {};
  afterFailing = mk "after-failing" "echo \${failing} > $out" {};
  independent = mk "independent" "echo independent > $out" {};
}`

/** sha256 of the bytes "fixed", in Nix base32. */
const sha256Fixed = "04rmhy6rn9kryhm4fn2r8ihwyhf0aacl7g4vmhvdvzkibi2r6alr"

const attrs = ["plain", "multi", "dependent", "structured", "fodFlat", "fodRecursive", "paths"]

const instantiate = (root: string, attr: string) => nix("nix-instantiate", ["--store", root, join(scratch, "graph.nix"), "-A", attr])

const nixBuild = (attr: string): Array<string> => {
  const result = spawnSync("nix-build", [
    join(scratch, "graph.nix"), "-A", attr, "--store", nixRoot, "--no-out-link",
    "--option", "sandbox", "true", "--option", "substituters", "", "--option", "cores", "2"
  ], { env: nixEnv })
  if (result.status !== 0) throw new Error(`nix-build -A ${attr} failed: ${result.stderr.toString()}`)
  return result.stdout.toString().trim().split("\n")
}

interface PathJson { path: string; narHash: string; narSize: number; references: Array<string>; ca?: string; deriver?: string }

const nixPathInfo = (root: string, paths: ReadonlyArray<string>): Array<PathJson> =>
  JSON.parse(nix("nix", ["path-info", "--store", root, "--json", ...paths])) as Array<PathJson>

/** The `out` path a derivation in the b3 store declares. */
const outputOf = (drvPath: string): string =>
  (JSON.parse(nix("nix", ["show-derivation", "--store", b3Root, drvPath])) as Record<string, { outputs: { out: { path: string } } }>)[drvPath]!.outputs.out.path

const b3Store = () => `local?root=${b3Root}`

beforeAll(() => {
  scratch = makeScratch("b3-build-nix-")
  nixRoot = join(scratch, "nix-root")
  b3Root = join(scratch, "b3-root")
  bb = addBusybox(nixRoot)
  expect(addBusybox(b3Root)).toBe(bb)
  // The recursive fixed output's hash: a directory with f = "fixed" and link -> f.
  const tree = join(scratch, "fod-tree")
  mkdirSync(tree)
  writeFileSync(join(tree, "f"), "fixed")
  spawnSync("ln", ["-s", "f", join(tree, "link")])
  fodRecursiveHash = nix("nix-hash", ["--type", "sha256", "--base32", tree])
  writeFileSync(join(scratch, "graph.nix"), expression(bb, fodRecursiveHash))
}, 60_000)
afterAll(() => removeScratch(scratch))

describe("b3 build vs nix-build (sandbox = true)", () => {
  it("gives the same output paths, NAR hashes, references and content addresses", () => {
    const drvs = attrs.map((attr) => {
      const drvPath = instantiate(b3Root, attr)
      expect(instantiate(nixRoot, attr)).toBe(drvPath)
      return drvPath
    })
    const nixOutputs = [...attrs, "multi.dev"].flatMap(nixBuild)
    const built = JSON.parse(b3(["build", "--store", b3Store(), "--max-jobs", "2", "--json", ...drvs])) as
      Array<{ drvPath: string; outputs: Record<string, string>; status: string }>
    expect(built.map((b) => b.drvPath)).toEqual(drvs)
    const b3Outputs = built.flatMap((b) => Object.values(b.outputs))
    expect([...b3Outputs].sort()).toEqual([...new Set(nixOutputs)].sort())
    expect(built.every((b) => b.status === "built" || b.status === "already-valid")).toBe(true)

    const strip = (info: PathJson) => ({ path: info.path, narHash: info.narHash, narSize: info.narSize, references: info.references, ca: info.ca, deriver: info.deriver })
    const fromNix = nixPathInfo(nixRoot, b3Outputs).map(strip)
    const fromB3 = nixPathInfo(b3Root, b3Outputs).map(strip)
    expect(fromB3).toEqual(fromNix)
    // The interesting cases really are interesting: self and input references, content addresses.
    const paths = fromB3.find((i) => i.path.endsWith("-paths"))!
    expect(paths.references).toContain(paths.path)
    expect(paths.references).toContain(bb)
    expect(fromB3.find((i) => i.path.endsWith("-fod-flat"))!.ca).toBe(`fixed:sha256:${sha256Fixed}`)
    expect(fromB3.find((i) => i.path.endsWith("-fod-recursive"))!.ca).toBe(`fixed:r:sha256:${fodRecursiveHash}`)

    // Nix accepts b3's store: every path re-hashes to its recorded hash.
    const verify = spawnSync("nix-store", ["--store", b3Root, "--verify", "--check-contents"], { env: nixEnv })
    expect(verify.stderr.toString()).not.toMatch(/modified|corrupt|error/)
    expect(verify.status).toBe(0)
  }, 300_000)

  it("is a no-op for outputs that are already valid, and keeps the build log", () => {
    const drvPath = instantiate(b3Root, "plain")
    const first = JSON.parse(b3(["build", "--store", b3Store(), "--json", drvPath])) as Array<{ status: string }>
    expect(["built", "already-valid"]).toContain(first[0]!.status)
    const again = JSON.parse(b3(["build", "--store", b3Store(), "--json", drvPath])) as Array<{ status: string; outputs: Record<string, string> }>
    expect(again[0]!.status).toBe("already-valid")
    expect(b3(["log", "--store", b3Store(), drvPath])).toBe("")
    const failing = instantiate(b3Root, "failing")
    runB3(["build", "--store", b3Store(), failing])
    expect(b3(["log", "--store", b3Store(), failing])).toBe("about to fail\ndetails on stderr")
  }, 120_000)

  it("reports a fixed-output hash mismatch with both hashes, as Nix does", () => {
    const drvPath = instantiate(b3Root, "wrongHash")
    const result = runB3(["build", "--store", b3Store(), drvPath])
    expect(result.status).toBe(4)
    const nixResult = spawnSync("nix-build", [join(scratch, "graph.nix"), "-A", "wrongHash", "--store", nixRoot, "--no-out-link",
      "--option", "sandbox", "true", "--option", "substituters", ""], { env: nixEnv })
    expect(nixResult.status).not.toBe(0)
    const got = /got:\s+(sha256-\S+)/.exec(nixResult.stderr.toString())![1]!
    expect(result.stderr).toContain(`hash mismatch in fixed-output derivation '${drvPath}'`)
    expect(result.stderr).toMatch(new RegExp(`specified: sha256-\\S+\\n\\s+got:\\s+${got.replace(/[+/]/g, "\\$&")}`))
    // Nothing of the wrong output is left valid.
    expect(runB3(["path-info", "--store", b3Store(), outputOf(drvPath)]).status).toBe(3)
    // What was built is kept under the path of the hash it has, as Nix keeps it (Nix's tests/fixed.sh).
    const kept = spawnSync("nix", ["path-info", "--all", "--store", nixRoot], { env: nixEnv }).stdout.toString().split("\n")
      .filter((p) => p.endsWith("-wrong-hash") && p !== outputOf(drvPath))
    expect(kept).toHaveLength(1)
    expect(b3(["path-info", "--store", b3Store(), kept[0]!])).toBe(kept[0])
  }, 120_000)

  it("stops dependents of a failed build, names it with its log tail, and --keep-going finishes the rest", () => {
    const failing = instantiate(b3Root, "failing")
    const after = instantiate(b3Root, "afterFailing")
    const independent = instantiate(b3Root, "independent")
    const result = runB3(["build", "--store", b3Store(), "--keep-going", "--json", after, independent])
    expect(result.status).toBe(5)
    expect(result.stderr).toContain(`build of '${failing}' failed: builder for 'failing' failed with exit code 3`)
    expect(result.stderr).toContain("details on stderr")
    expect(runB3(["path-info", "--store", b3Store(), outputOf(independent)]).status).toBe(0)
    expect(runB3(["path-info", "--store", b3Store(), outputOf(after)]).status).toBe(3)
  }, 120_000)
})
