/**
 * References are a set in Nix (`StorePathSet`): a path listed twice counts once in the store path
 * made from them. The table below makes derivations whose `.drv` lists a path both as an input
 * source and as an input derivation — what Nix 2.8 writes when a derivation uses `dep.drvPath`
 * (the `=` context brings the whole `.drv` closure in as sources *and* as input derivations) —
 * and text files whose references repeat. b3's derivation API (`drvPath(dep)`), `b3 drv show`
 * (the `.drv` path it computes from the file) and `b3 store-path text --ref` must agree with Nix.
 */
import { afterAll, describe, expect, it } from "vitest"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Drv from "../../src/core/derivation/index.ts"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { b3 } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"
import { ok, runNix } from "../core/nix-helpers.ts"

const scratch = makeScratch("b3-refs-")
afterAll(() => removeScratch(scratch))
const root = join(scratch, "store")

const sys = `system = "x86_64-linux"; builder = "/bin/sh";`
const nixPrelude = `
  other = builtins.toFile "other.txt" "other";
  src = builtins.toFile "src.txt" "hello \${other}";
  dep = derivation { name = "dep"; ${sys} s = src; outputs = [ "out" "dev" ]; };
  dep2 = derivation { name = "dep2"; ${sys} d = dep.dev; x = "plain"; };
  ca = derivation { name = "ca"; ${sys} __contentAddressed = true; s = src; };
`

// The same inputs in b3's API.
const text = (name: string, contents: string, refs: ReadonlyArray<string> = []) =>
  StorePath.print(StorePath.makeText(name, Hash.hashBytes("sha256", contents), refs.map((r) => ok(StorePath.parse(r)))))
const other = text("other.txt", "other")
const src = text("src.txt", `hello ${other}`, [other])
const srcRef = Drv.storePath(src, { references: [other] })
const mk = (attrs: Omit<Drv.DerivationAttrs, "system" | "builder">): Drv.BuiltDerivation => ok(Drv.derivation({ ...attrs, system: "x86_64-linux", builder: "/bin/sh" } as Drv.DerivationAttrs))
const dep = mk({ name: "dep", s: srcRef, outputs: ["out", "dev"] })
const dep2 = mk({ name: "dep2", d: dep.outputs.dev!, x: "plain" })
const ca = mk({ name: "ca", s: srcRef, __contentAddressed: true })

/** title, the Nix attributes, the same in b3's API. */
const cases: ReadonlyArray<readonly [string, string, () => Drv.BuiltDerivation]> = [
  ["dep.drvPath only (the .drv is a source and an input derivation)", `d = dep.drvPath;`, () => mk({ name: "t0", d: Drv.drvPath(dep) })],
  ["dep.drvPath and one output of it", `d = dep.drvPath; o = dep.dev;`, () => mk({ name: "t1", d: Drv.drvPath(dep), o: dep.outputs.dev! })],
  ["dep.drvPath and a source it already has", `d = dep.drvPath; s = src;`, () => mk({ name: "t2", d: Drv.drvPath(dep), s: srcRef })],
  ["the drvPath of a derivation with inputs (closure of two .drv files and two sources)", `d = "\${dep2.drvPath}/x";`, () => mk({ name: "t3", d: Drv.str`${Drv.drvPath(dep2)}/x` })],
  ["two drvPaths whose closures overlap", `a = dep.drvPath; b = dep2.drvPath;`, () => mk({ name: "t4", a: Drv.drvPath(dep), b: Drv.drvPath(dep2) })],
  ["drvPath in args and structured attrs", `__structuredAttrs = true; args = [ dep.drvPath ]; l = [ dep2.drvPath ];`,
    () => mk({ name: "t5", __structuredAttrs: true, args: [Drv.drvPath(dep)], l: [Drv.drvPath(dep2)] })],
  ["the drvPath of a floating content-addressed derivation", `d = ca.drvPath; o = ca;`, () => mk({ name: "t6", d: Drv.drvPath(ca), o: ca })]
]

describe("references listed twice: b3 against Nix 2.8", () => {
  const expr = join(scratch, "refs.nix")
  writeFileSync(expr, `let ${nixPrelude}
    all = [ ${cases.map(([, attrs], i) => `(derivation { name = "t${i}"; ${sys} ${attrs} })`).join(" ")} ];
  in { inherit all; paths = map (d: { drvPath = d.drvPath; out = d.outPath; }) all; }`)
  let paths: Array<{ drvPath: string; out: string }> | undefined
  const theirs = () => paths ??= (() => {
    runNix("nix-instantiate", ["--store", root, "-A", "all", expr])
    return JSON.parse(runNix("nix-instantiate", ["--store", root, "--eval", "--strict", "--json", "-A", "paths", expr])) as Array<{ drvPath: string; out: string }>
  })()

  it.each(cases.map(([title, , make], i) => [title, i, make] as const))("%s", (_, i, make) => {
    const { drvPath, out } = theirs()[i]!
    const file = join(root, drvPath.slice(1))
    const onDisk = readFileSync(file, "utf8")
    const parsed = ok(Drv.parse(onDisk))
    // The case is what it claims: some path is both an input source and an input derivation.
    expect(parsed.inputSrcs.some((s) => parsed.inputDrvs.has(s))).toBe(true)
    const ours = make()
    expect(ours.aterm).toBe(onDisk)
    expect(ours.drvPath).toBe(drvPath)
    expect(ours.outputPaths.out).toBe(out) // a placeholder for the one that depends on a floating CA derivation
    // b3 drv show computes the .drv path from the file's contents and references
    expect(Object.keys(JSON.parse(b3(["drv", "show", file])))).toEqual([drvPath])
  })

  it("builtins.toFile and b3 store-path text: a reference given twice counts once", () => {
    const viaNix = runNix("nix-instantiate", ["--readonly-mode", "--eval", "--json", "-E",
      `let o = builtins.toFile "other.txt" "other"; in builtins.toFile "t" "\${o} \${o}"`]).trim()
    const contents = join(scratch, "t")
    writeFileSync(contents, `${other} ${other}`)
    expect(b3(["store-path", "text", "--name", "t", "--ref", other, "--ref", other, contents])).toBe(JSON.parse(viaNix))
    const once = StorePath.makeText("t", Hash.hashBytes("sha256", `${other} ${other}`), [ok(StorePath.parse(other))])
    const twice = StorePath.makeText("t", Hash.hashBytes("sha256", `${other} ${other}`), [ok(StorePath.parse(other)), ok(StorePath.parse(other))])
    expect(StorePath.print(twice)).toBe(StorePath.print(once))
  })
})
