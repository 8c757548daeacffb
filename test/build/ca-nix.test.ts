/**
 * Floating content-addressed derivations (`__contentAddressed = true`, Nix 2.8's ca-derivations),
 * built by `nix-build` with the sandbox on in one scratch store and by `b3 build` in another, from
 * the same `.drv` files:
 *
 * - a graph of 11 derivations (self-references, two outputs that refer to each other, a flat and a
 *   sha512 output, an input-addressed derivation deferred behind content-addressed inputs, a
 *   fixed-output one resolved behind one, an output that does not refer to its input) gives the
 *   same output paths, NAR hashes, references and content addresses, and the same Realisations
 *   and RealisationsRefs rows;
 * - early cut-off: a change to the leaf derivation that leaves its output as it was rebuilds the
 *   leaf only (builds counted), in b3 and in Nix;
 * - substitution by realisation: b3 copies the outputs with their signed realisations to a cache,
 *   which Nix and a fresh b3 store then substitute from without building; and b3 substitutes from
 *   a cache Nix wrote (realisations signed with Nix's secret-key-files).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn, spawnSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { addBusybox } from "../support/busybox.ts"
import { b3Bin } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"
import { nixCaEnv, runNix } from "../core/nix-helpers.ts"

/** A Nix command with ca-derivations on; its stdout without the final newline. */
const nix = (cmd: string, argv: ReadonlyArray<string>) => runNix(cmd, argv).replace(/\n$/, "")

let scratch: string
let bb: string
const sha256Fixed = "04rmhy6rn9kryhm4fn2r8ihwyhf0aacl7g4vmhvdvzkibi2r6alr" // of the bytes "fixed"

const expression = `{ bbPath, variant ? "1" }:
let
  bb = builtins.storePath bbPath;
  B = "\${bb}/bin/busybox";
  mk = ca: name: script: attrs: derivation ({
    inherit name; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
    args = [ "-c" "echo BUILT-\${name}; \${script}" ];
  } // (if ca then { __contentAddressed = true; } else {}) // attrs);
  ca = mk true;
  ia = mk false;
in rec {
  a = ca "a" "$B mkdir $out; echo $out > $out/self; echo a > $out/data" { inherit variant B; };
  m = ca "m" "$B mkdir $out $dev; echo $out > $out/me; echo $out > $dev/lib" { outputs = [ "out" "dev" ]; inherit B; };
  f = ca "f" "echo flat > $out" { outputHashMode = "flat"; };
  s = ca "s" "$B mkdir $out; echo s > $out/x" { outputHashAlgo = "sha512"; inherit B; };
  b = ca "b" "$B mkdir $out; echo \${a} \${m.dev} > $out/deps" { inherit B; };
  d = ia "d" "echo \${b} \${f} > $out" {};
  c = ca "c" "$B mkdir $out; $B cat \${d} > $out/d" { inherit B; };
  n = ca "n" "echo \${a} | $B wc -c > $out" { outputHashMode = "flat"; inherit B; };
  p = ia "p" "echo plain > $out" {};
  fod = ia "fod" "echo -n fixed > $out; echo \${a} > /dev/null" { outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "${sha256Fixed}"; };
  top = ca "top" "$B mkdir $out; echo \${p} \${c} \${s} \${n} \${fod} > $out/all" { inherit B; };
  roots = [ top m ];
}`

const graphFile = () => join(scratch, "graph.nix")
const args = (variant: string) => ["--arg", "bbPath", bb, "--argstr", "variant", variant]

const instantiate = (root: string, variant = "1"): Array<string> =>
  nix("nix-instantiate", ["--store", root, graphFile(), "-A", "roots", ...args(variant)]).split("\n")

interface Run { readonly status: number; readonly stdout: string; readonly stderr: string }
const run = (cmd: string, argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv = nixCaEnv): Run => {
  const r = spawnSync(cmd, argv, { env, maxBuffer: 1 << 28 })
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() }
}

/** nix-build of the roots; the output paths and how many derivations Nix built. */
const nixBuild = (root: string, variant = "1", extra: ReadonlyArray<string> = []) => {
  const r = run("nix-build", [graphFile(), "-A", "roots", ...args(variant), "--store", root, "--no-out-link",
    "--option", "sandbox", "true", "--option", "substituters", "", ...extra])
  if (r.status !== 0) throw new Error(`nix-build failed: ${r.stderr}`)
  return { outputs: r.stdout.trim().split("\n"), builds: (r.stderr.match(/^building '/gm) ?? []).length, stderr: r.stderr }
}

/** b3 build of the roots; the results and how many builders ran (each echoes BUILT-<name>). */
const b3Build = (root: string, drvs: ReadonlyArray<string>, extra: ReadonlyArray<string> = []) => {
  const r = run(b3Bin, ["build", "--store", `local?root=${root}`, "--json", "--print-build-logs", ...extra, ...drvs], process.env)
  if (r.status !== 0) throw new Error(`b3 build failed: ${r.stderr}`)
  return {
    results: JSON.parse(r.stdout) as Array<{ drvPath: string; outputs: Record<string, string>; status: string }>,
    builds: (r.stderr.match(/> BUILT-/g) ?? []).length,
    stderr: r.stderr
  }
}

/** The Realisations and RealisationsRefs rows of a store, as sorted strings. */
const realisations = (root: string) => {
  const db = new DatabaseSync(join(root, "nix/var/nix/db/db.sqlite"), { readOnly: true })
  try {
    const rows = (db.prepare("select r.drvPath as id, r.outputName as name, v.path as path from Realisations r join ValidPaths v on v.id = r.outputPath").all() as
      Array<{ id: string; name: string; path: string }>).map((r) => `${r.id}!${r.name} -> ${r.path}`).sort()
    const refs = (db.prepare(
      "select a.drvPath || '!' || a.outputName as referrer, b.drvPath || '!' || b.outputName as reference from RealisationsRefs x " +
      "join Realisations a on a.id = x.referrer join Realisations b on b.id = x.realisationReference").all() as Array<{ referrer: string; reference: string }>)
      .map((r) => `${r.referrer} -> ${r.reference}`).sort()
    return { rows, refs }
  } finally {
    db.close()
  }
}

interface PathJson { path: string; narHash: string; narSize: number; references: Array<string>; ca?: string }
const pathInfo = (root: string, paths: ReadonlyArray<string>) =>
  (JSON.parse(nix("nix", ["path-info", "--store", root, "--json", ...paths])) as Array<PathJson>)
    .map(({ path, narHash, narSize, references, ca }) => ({ path, narHash, narSize, references, ca }))

beforeAll(() => {
  scratch = makeScratch("b3-ca-nix-")
  bb = addBusybox(join(scratch, "probe"))
  writeFileSync(graphFile(), expression)
}, 60_000)
afterAll(() => removeScratch(scratch))

describe("floating content-addressed derivations: b3 build vs nix-build (sandbox = true)", () => {
  const nixRoot = () => join(scratch, "nix")
  const b3Root = () => join(scratch, "b3")
  let drvs: Array<string> = []
  let outputs: Array<string> = []

  it("an 11-derivation graph: the same outputs (paths, NAR hashes, references, content addresses) and the same realisations", () => {
    expect(addBusybox(nixRoot())).toBe(bb)
    expect(addBusybox(b3Root())).toBe(bb)
    drvs = instantiate(b3Root())
    expect(instantiate(nixRoot())).toEqual(drvs)
    const theirs = nixBuild(nixRoot())
    const ours = b3Build(b3Root(), drvs)
    expect(ours.results.map((r) => r.status)).toEqual(["built", "built"])
    outputs = ours.results.flatMap((r) => Object.values(r.outputs)).sort()
    // nix-build prints the roots' default outputs; b3 gives every output (m-dev too).
    expect(theirs.outputs.every((o) => outputs.includes(o))).toBe(true)
    expect(outputs.length).toBe(theirs.outputs.length + 1)
    expect(ours.builds).toBe(theirs.builds)
    expect(ours.builds).toBe(11)

    // Every output of the graph, from either store's realisations, compared by Nix's path-info.
    const all = realisations(b3Root())
    const everyPath = [...new Set(all.rows.map((r) => r.slice(r.indexOf(" -> ") + 4)))].filter((p) => p !== bb)
    expect(pathInfo(b3Root(), everyPath)).toEqual(pathInfo(nixRoot(), everyPath))
    expect(all).toEqual(realisations(nixRoot()))
    // The cases are what they claim.
    const infos = pathInfo(b3Root(), everyPath)
    const info = (suffix: string) => infos.find((i) => i.path.endsWith(suffix))!
    expect(info("-a").references).toEqual([info("-a").path])
    expect(info("-m-dev").references).toContain(info("-m").path)
    expect(info("-f").ca).toMatch(/^fixed:sha256:/)
    expect(info("-s").ca).toMatch(/^fixed:r:sha512:/)
    expect(info("-n").references).toEqual([])
    expect(all.refs.length).toBeGreaterThan(3)

    // Nix accepts b3's store as its own, and finds the roots already built through b3's realisations.
    expect(run("nix-store", ["--store", b3Root(), "--verify", "--check-contents"]).status).toBe(0)
    expect(nixBuild(b3Root()).builds).toBe(0)
  }, 600_000)

  it("early cut-off: a leaf change that keeps its output rebuilds only the leaf, in b3 as in Nix", () => {
    const changed = instantiate(b3Root(), "2")
    expect(changed).not.toEqual(drvs)
    expect(instantiate(nixRoot(), "2")).toEqual(changed)
    const theirs = nixBuild(nixRoot(), "2")
    const ours = b3Build(b3Root(), changed)
    expect(theirs.builds).toBe(1)
    expect(ours.builds).toBe(theirs.builds)
    expect(ours.stderr).toMatch(/> BUILT-a\n/)
    expect(ours.results.flatMap((r) => Object.values(r.outputs)).sort()).toEqual(outputs)
    expect(theirs.outputs.every((o) => outputs.includes(o))).toBe(true)
    expect(realisations(b3Root())).toEqual(realisations(nixRoot()))
  }, 600_000)

  it("substitution by realisation: Nix and a fresh b3 store take b3's signed cache without building; b3 takes Nix's", () => {
    const keys = join(scratch, "keys")
    run("mkdir", ["-p", keys])
    run("nix-store", ["--generate-binary-cache-key", "b3-ca-1", join(keys, "sk"), join(keys, "pk")])
    const pk = run("cat", [join(keys, "pk")]).stdout.trim()
    const cache = `file://${join(scratch, "cache")}?compression=none&secret-key=${join(keys, "sk")}`
    const copy = run(b3Bin, ["copy", "--no-check-sigs", "--from", `local?root=${b3Root()}`, "--to", cache, ...drvs.map((d) => `${d}!*`)], process.env)
    expect(copy.status, copy.stderr).toBe(0)

    const nixFresh = join(scratch, "nix-fresh")
    addBusybox(nixFresh)
    const theirs = nixBuild(nixFresh, "1", ["--option", "substituters", `file://${join(scratch, "cache")}`, "--option", "trusted-public-keys", pk])
    expect(theirs.builds).toBe(0)
    expect(theirs.outputs.every((o) => outputs.includes(o))).toBe(true)

    const b3Fresh = join(scratch, "b3-fresh")
    addBusybox(b3Fresh)
    instantiate(b3Fresh)
    const ours = b3Build(b3Fresh, drvs, ["--substituters", `file://${join(scratch, "cache")}`, "--trusted-public-keys", pk])
    expect(ours.builds, ours.stderr).toBe(0)
    expect(ours.results.map((r) => r.status)).toEqual(["substituted", "substituted"])
    expect(ours.results.flatMap((r) => Object.values(r.outputs)).sort()).toEqual(outputs)
    // Without the key the realisations are not trusted: b3 builds instead (as Nix passes over unsigned
    // paths) — all but the fixed-output derivation, whose path is content-addressed and taken without a key.
    const untrusted = join(scratch, "b3-untrusted")
    addBusybox(untrusted)
    instantiate(untrusted)
    const unkeyed = b3Build(untrusted, drvs, ["--substituters", `file://${join(scratch, "cache")}`])
    expect(unkeyed.builds).toBe(10)
    expect(unkeyed.stderr).not.toMatch(/BUILT-fod/)

    // Nix signs the realisations it builds with secret-key-files; b3 substitutes from the cache Nix copies them to.
    // (b3 serve is checked in the next test.)
    const nixSigned = join(scratch, "nix-signed")
    addBusybox(nixSigned)
    nixBuild(nixSigned, "1", ["--option", "secret-key-files", join(keys, "sk")])
    const nixCache = `file://${join(scratch, "nix-cache")}`
    expect(run("nix", ["copy", "--from", nixSigned, "--to", nixCache, ...drvs]).status).toBe(0)
    const fromNix = join(scratch, "b3-from-nix")
    addBusybox(fromNix)
    instantiate(fromNix)
    const taken = b3Build(fromNix, drvs, ["--substituters", nixCache, "--trusted-public-keys", pk])
    expect(taken.builds).toBe(0)
    expect(taken.results.flatMap((r) => Object.values(r.outputs)).sort()).toEqual(outputs)
  }, 600_000)

  it("b3 serve over b3's store: Nix substitutes the graph through realisations served over HTTP", async () => {
    const keys = join(scratch, "keys")
    const pk = run("cat", [join(keys, "pk")]).stdout.trim()
    const server = spawn(b3Bin, ["--json", "--quiet", "serve", "--store", `local?root=${b3Root()}`, "--listen", "127.0.0.1:0", "--secret-key", join(keys, "sk")],
      { stdio: ["ignore", "pipe", "inherit"] })
    try {
      const url = await new Promise<string>((resolve, reject) => {
        server.stdout!.once("data", (chunk: Buffer) => resolve((JSON.parse(chunk.toString().split("\n")[0]!) as { url: string }).url))
        server.once("exit", (code) => reject(new Error(`b3 serve exited (${code})`)))
      })
      const nixFresh = join(scratch, "nix-over-http")
      addBusybox(nixFresh)
      const theirs = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        const child = spawn("nix-build", [graphFile(), "-A", "roots", ...args("1"), "--store", nixFresh, "--no-out-link",
          "--option", "sandbox", "true", "--option", "substituters", url, "--option", "trusted-public-keys", pk], { env: nixCaEnv })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (c: Buffer) => { stdout += c.toString() })
        child.stderr.on("data", (c: Buffer) => { stderr += c.toString() })
        child.on("exit", (code) => resolve({ status: code ?? -1, stdout, stderr }))
      })
      expect(theirs.status, theirs.stderr).toBe(0)
      expect(theirs.stderr).not.toMatch(/^building '/m)
      expect(theirs.stdout.trim().split("\n").every((o) => outputs.includes(o))).toBe(true)
    } finally {
      server.kill()
    }
  }, 300_000)
})
