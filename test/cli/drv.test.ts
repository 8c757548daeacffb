import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mkdirSync, readdirSync, writeFileSync, copyFileSync } from "node:fs"
import { join } from "node:path"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { b3, runB3 } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"
import { runNix } from "../core/nix-helpers.ts"

const scratch = makeScratch("b3-cli-drv-")
afterAll(() => removeScratch(scratch))

const run = (cmd: string, args: ReadonlyArray<string>) => runNix(cmd, args).trim()

const root = join(scratch, "store")
const storeDir = join(root, "nix/store")
const expr = join(scratch, "drvs.nix")
let info: Record<string, { drvPath: string; outputs: Record<string, string> }> = {}
const file = (name: string) => join(storeDir, info[name]!.drvPath.slice("/nix/store/".length))

beforeAll(() => {
  writeFileSync(expr, `let
    mk = attrs: derivation ({ system = "x86_64-linux"; builder = "/bin/sh"; } // attrs);
    dep = mk { name = "dep"; outputs = [ "out" "dev" ]; text = "quote \\" backslash \\\\ newline \\n tab \\t cr \\r é"; };
    fixed = mk { name = "fixed"; outputHashMode = "recursive"; outputHashAlgo = "sha512"; outputHash = "${"0".repeat(128)}"; };
    ca = mk { name = "ca"; __contentAddressed = true; };
    top = mk { name = "top"; a = dep.dev; b = fixed; args = [ "-c" "\${dep}/bin" ]; };
    deferred = mk { name = "deferred"; x = ca; };
    structured = mk { name = "structured"; __structuredAttrs = true; n = 1; l = [ 1 "x" ]; };
    drvs = { inherit dep fixed ca top deferred structured; };
    show = d: { drvPath = d.drvPath; outputs = builtins.listToAttrs (map (o: { name = o; value = d.\${o}.outPath; }) (d.outputs or [ "out" ])); };
  in { inherit drvs; shown = builtins.mapAttrs (_: show) drvs; }`)
  run("nix-instantiate", ["--store", root, "-A", "drvs", expr])
  info = JSON.parse(run("nix-instantiate", ["--store", root, "--eval", "--strict", "--json", "-A", "shown", expr]))
})

describe("b3 drv", () => {
  it("show prints what nix show-derivation prints", () => {
    const files = readdirSync(storeDir).filter((f) => f.endsWith(".drv")).map((f) => join(storeDir, f))
    const theirs = run("nix", ["show-derivation", "--store", root, ...files.map((f) => `/nix/store/${f.slice(storeDir.length + 1)}`)])
    const ours = b3(["drv", "show", ...files])
    expect(JSON.parse(ours)).toEqual(JSON.parse(theirs))
    expect(ours).toBe(theirs)
  })

  it("outputs computes the output paths Nix gave (unknown for floating and deferred ones)", () => {
    for (const [name, { outputs }] of Object.entries(info)) {
      const ours = JSON.parse(b3(["drv", "outputs", "--json", file(name)])) as Record<string, string | null>
      const known = name === "ca" || name === "deferred"
      expect(Object.keys(ours).sort(), name).toEqual(Object.keys(outputs).sort())
      for (const [o, p] of Object.entries(ours)) expect(p, `${name}.${o}`).toBe(known ? null : outputs[o])
    }
    expect(b3(["drv", "outputs", file("dep")])).toBe(`dev ${info.dep!.outputs.dev}\nout ${info.dep!.outputs.out}`)
  })

  it("hash prints hashDerivationModulo: masked it gives the output paths, for fixed outputs it is the fixed hash", () => {
    const masked = b3(["drv", "hash", "--masked", file("top")])
    expect(masked).toMatch(/^[0-9a-f]{64}$/)
    const drvHash = Hash.make("sha256", new Uint8Array(Buffer.from(masked, "hex")))
    expect(StorePath.print(StorePath.makeOutput("out", drvHash, "top"))).toBe(info.top!.outputs.out)
    const fixedOut = info.fixed!.outputs.out
    expect(b3(["drv", "hash", file("fixed")])).toBe(Hash.encode(Hash.hashBytes("sha256", `fixed:out:r:sha512:${"0".repeat(128)}:${fixedOut}`), "base16"))
    expect(b3(["drv", "hash", "--base32", file("fixed")])).toBe(Hash.encode(Hash.hashBytes("sha256", `fixed:out:r:sha512:${"0".repeat(128)}:${fixedOut}`), "base32"))
  })

  it("attrs prints the structured attributes files", () => {
    const json = JSON.parse(b3(["drv", "attrs", file("structured")]))
    expect(json).toMatchObject({ n: 1, l: [1, "x"], outputs: { out: info.structured!.outputs.out } })
    expect(b3(["drv", "attrs", "--sh", file("structured")])).toContain(`declare -a l=(1 'x' )`)
    expect(runB3(["drv", "attrs", file("dep")]).status).toBe(2)
  })

  it("--store reads the derivations and their inputs from a store: the local store, or a binary cache", () => {
    const paths = Object.values(info).map((i) => i.drvPath)
    const theirs = run("nix", ["show-derivation", "--store", root, ...paths])
    expect(b3(["drv", "show", "--store", root, ...paths])).toBe(theirs)
    // a file cache holding only the closure of top.drv: its inputs come from the cache too
    const cache = `file://${join(scratch, "drv-cache")}`
    b3(["copy", "--closure", "--from", root, "--to", cache, info.top!.drvPath])
    expect(b3(["drv", "show", "--store", cache, info.top!.drvPath])).toBe(run("nix", ["show-derivation", "--store", root, info.top!.drvPath]))
    expect(b3(["drv", "hash", "--masked", "--store", cache, info.top!.drvPath])).toBe(b3(["drv", "hash", "--masked", file("top")]))
    expect(b3(["drv", "outputs", "--store", cache, info.top!.drvPath])).toBe(`out ${info.top!.outputs.out}`)
    expect(JSON.parse(b3(["drv", "attrs", "--store", root, info.structured!.drvPath]))).toMatchObject({ n: 1, l: [1, "x"] })
    // a path the cache does not have: exit 3, naming it
    const absent = runB3(["drv", "show", "--store", cache, info.structured!.drvPath])
    expect(absent.status).toBe(3)
    expect(absent.stderr).toContain(info.structured!.drvPath.slice("/nix/store/".length))
    expect(absent.stderr.trim().split("\n")).toHaveLength(1)
  })

  it("fails with one line and exit 2 on a malformed .drv, 3 on a missing file or input", () => {
    const bad = join(scratch, "bad.drv")
    writeFileSync(bad, `Derive([("out","","","")],[],[],"s","b",["a" "b"],[])`)
    const r = runB3(["drv", "show", bad])
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/^b3: invalid derivation '.*bad\.drv' at byte 44: expected ',' or '\]'\n$/)
    expect(runB3(["drv", "show", join(scratch, "absent.drv")]).status).toBe(3)
    const lone = join(scratch, "lone")
    mkdirSync(lone)
    copyFileSync(file("top"), join(lone, info.top!.drvPath.slice("/nix/store/".length)))
    const missing = runB3(["drv", "hash", join(lone, info.top!.drvPath.slice("/nix/store/".length))])
    expect(missing.status).toBe(3)
    expect(missing.stderr).toMatch(/input derivation '\/nix\/store\/.*-dep\.drv' \(needed by 'top'\) is not available/)
  })
})
