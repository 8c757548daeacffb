/**
 * Derivations whose strings are not UTF-8, as Nix 2.8 writes them from a Latin-1 (or any bytes)
 * `.nix` file: a table of byte sequences placed in attribute values, names, arguments and the
 * builder. For each, Nix instantiates the `.drv`; b3 must read it and print it back byte for byte,
 * `b3 drv show` must print `nix show-derivation`'s bytes, the `.drv` path and output paths must be
 * Nix's, and b3's derivation API given the same bytes (as ../../src/core/byte-string.ts keeps them)
 * must write the same `.drv`.
 */
import { afterAll, describe, expect, it } from "vitest"
import { isUtf8 } from "node:buffer"
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as ByteString from "../../src/core/byte-string.ts"
import * as Drv from "../../src/core/derivation/index.ts"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { b3Bin } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"
import { ok, runNix } from "../core/nix-helpers.ts"

const scratch = makeScratch("b3-latin1-")
afterAll(() => removeScratch(scratch))
const root = join(scratch, "store")

type Bytes = ReadonlyArray<number> | string
const bytes = (b: Bytes): Buffer => typeof b === "string" ? Buffer.from(b, "latin1") : Buffer.from(b)

interface Case {
  readonly title: string
  readonly attrs: ReadonlyArray<readonly [Bytes, Bytes]>
  readonly args?: ReadonlyArray<Bytes>
  readonly builder?: Bytes
  readonly structured?: boolean
  readonly contentAddressed?: boolean
  /** Index of an earlier case whose output this one uses (through the attribute `dep`). */
  readonly dep?: number
}

const cases: ReadonlyArray<Case> = [
  { title: "Latin-1 é in a value", attrs: [["x", "caf\xe9"]] },
  { title: "bytes that are never UTF-8 (0xff 0xfe)", attrs: [["x", [0xff, 0xfe]]] },
  { title: "a Latin-1 attribute name", attrs: [["k\xe9y", "v"]] },
  { title: "a lone continuation byte in an argument", attrs: [], args: [[0x80], "a\xc3\xa9\xe9"] },
  { title: "a Latin-1 builder", attrs: [], builder: "/bin/\xe9sh" },
  { title: "a truncated 4-byte sequence", attrs: [["x", [0xf0, 0x9f, 0x98]]] },
  { title: "an overlong encoding", attrs: [["x", [0xc0, 0x80, 0xc1, 0xbf]]] },
  { title: "an encoded surrogate", attrs: [["x", [0xed, 0xa0, 0x80, 0xed, 0xbf, 0xbf]]] },
  { title: "beyond U+10FFFF", attrs: [["x", [0xf4, 0x90, 0x80, 0x80, 0xf8, 0x88, 0x80, 0x80, 0x80]]] },
  { title: "valid UTF-8 next to invalid bytes", attrs: [["x", [0xf0, 0x9f, 0x98, 0x80, 0xe9, 0x63, 0xc3, 0xa9, 0xc3]]] },
  { title: "control characters and escapes with Latin-1", attrs: [["x", "\x01\x7f\x1f\"\\\n\t\r\xe9"]] },
  { title: "CP-1252 quotes", attrs: [["x", "\x93quoted\x94 \x80 euro"]] },
  { title: "names that sort by byte", attrs: [["a\xe9", "1"], ["a\xc3\xa9", "2"], ["a\xef\xbf\xbf", "3"], ["a\xf0\x9f\x98\x80", "4"], ["a\xff", "5"]] },
  { title: "structured attributes", attrs: [["x", "caf\xe9"], ["k\xe9y", [0xff]]], structured: true },
  { title: "floating content-addressed", attrs: [["x", "caf\xe9"]], contentAddressed: true },
  { title: "depends on a Latin-1 derivation", attrs: [["y", "\xe9"]], dep: 0 },
  { title: "depends on a content-addressed Latin-1 derivation (deferred)", attrs: [["y", "\xe9"]], dep: 14 }
]

/** A Nix string literal with these bytes: `"`, `\`, `$` and CR/LF/tab escaped (Nix's lexer turns a raw CR into LF); bytes ≥ 0x80 go in raw. */
const nixString = (b: Bytes): Buffer => {
  const out: Array<number> = [0x22]
  const named: Record<number, number> = { 0x0a: 0x6e, 0x0d: 0x72, 0x09: 0x74 }
  for (const c of bytes(b)) {
    if (c === 0x22 || c === 0x5c || c === 0x24) out.push(0x5c, c)
    else if (named[c] !== undefined) out.push(0x5c, named[c])
    else out.push(c)
  }
  out.push(0x22)
  return Buffer.from(out)
}

const renderNix = (): Buffer => {
  const parts: Array<Buffer | string> = ["let\n"]
  cases.forEach((c, i) => {
    parts.push(`c${i} = derivation { name = "c${i}"; system = "x86_64-linux"; builder = `, nixString(c.builder ?? "/bin/sh"), "; ")
    if (c.args) parts.push("args = [ ", ...c.args.flatMap((a) => [nixString(a), " "]), "]; ")
    if (c.structured) parts.push("__structuredAttrs = true; ")
    if (c.contentAddressed) parts.push("__contentAddressed = true; ")
    if (c.dep !== undefined) parts.push(`dep = c${c.dep}; `)
    for (const [k, v] of c.attrs) parts.push(nixString(k), " = ", nixString(v), "; ")
    parts.push("};\n")
  })
  parts.push(`all = [ ${cases.map((_, i) => `c${i}`).join(" ")} ];\n`)
  parts.push(`in { inherit all; paths = map (d: { drvPath = d.drvPath; out = d.outPath; }) all; }\n`)
  return Buffer.concat(parts.map((p) => typeof p === "string" ? Buffer.from(p) : p))
}

const str = (b: Bytes) => ByteString.decode(bytes(b))

const buildOurs = (): Array<Drv.BuiltDerivation> => {
  const built: Array<Drv.BuiltDerivation> = []
  for (const c of cases) {
    const attrs: Record<string, Drv.Value> = {}
    for (const [k, v] of c.attrs) attrs[str(k)] = str(v)
    built.push(ok(Drv.derivation({
      ...attrs,
      name: `c${built.length}`, system: "x86_64-linux", builder: str(c.builder ?? "/bin/sh"),
      ...(c.args ? { args: c.args.map(str) } : {}),
      ...(c.structured ? { __structuredAttrs: true } : {}),
      ...(c.contentAddressed ? { __contentAddressed: true } : {}),
      ...(c.dep !== undefined ? { dep: built[c.dep]! } : {})
    })))
  }
  return built
}

describe("derivations that are not UTF-8: b3 against Nix 2.8", () => {
  const expr = join(scratch, "latin1.nix")
  writeFileSync(expr, renderNix())
  let nixPaths: Array<{ drvPath: string; out: string }> | undefined
  const theirs = () => nixPaths ??= (() => {
    runNix("nix-instantiate", ["--store", root, "-A", "all", expr])
    return JSON.parse(runNix("nix-instantiate", ["--store", root, "--eval", "--strict", "--json", "-A", "paths", expr])) as Array<{ drvPath: string; out: string }>
  })()
  const onDisk = (drvPath: string) => readFileSync(join(root, drvPath.slice(1)))
  const ours = buildOurs()

  it.each(cases.map((c, i) => [c.title, i] as const))("%s", (_, i) => {
    const { drvPath, out } = theirs()[i]!
    const file = onDisk(drvPath)
    expect(isUtf8(file)).toBe(false)
    // read and printed back byte for byte
    const drv = ok(Drv.parse(file, { name: `c${i}`, source: drvPath }))
    expect(Buffer.from(ByteString.encode(Drv.print(drv))).equals(file)).toBe(true)
    // the derivation API writes the same .drv at the same path, with the same output path
    expect(Buffer.from(ByteString.encode(ours[i]!.aterm)).equals(file)).toBe(true)
    expect(ours[i]!.drvPath).toBe(drvPath)
    expect(ours[i]!.outputPaths.out).toBe(out)
  })

  it("b3 drv show prints nix show-derivation's bytes; drv outputs and drv hash give Nix's output paths", () => {
    const paths = theirs().map((p) => p.drvPath)
    const nixShow = spawnSync("nix", ["show-derivation", "--store", root, ...paths], { env: { ...process.env, NIX_CONFIG: "experimental-features = nix-command ca-derivations" } })
    expect(nixShow.status, nixShow.stderr.toString()).toBe(0)
    const files = paths.map((p) => join(root, p.slice(1)))
    const b3Show = spawnSync(b3Bin, ["drv", "show", ...files])
    expect(b3Show.status, b3Show.stderr.toString()).toBe(0)
    expect(isUtf8(nixShow.stdout)).toBe(false)
    expect(Buffer.compare(b3Show.stdout, nixShow.stdout)).toBe(0)
    expect(ok(Drv.parseShowDerivation(new Uint8Array(nixShow.stdout))).size).toBe(paths.length)
    theirs().forEach(({ out }, i) => {
      const r = spawnSync(b3Bin, ["--json", "drv", "outputs", files[i]!])
      expect(r.status, r.stderr.toString()).toBe(0)
      const deferred = cases[i]!.contentAddressed === true || cases[i]!.dep === 14
      expect(JSON.parse(r.stdout.toString()).out).toBe(deferred ? null : out)
      if (deferred) return
      const masked = spawnSync(b3Bin, ["drv", "hash", "--masked", files[i]!]).stdout.toString().trim()
      expect(StorePath.print(StorePath.makeOutput("out", Hash.make("sha256", new Uint8Array(Buffer.from(masked, "hex"))), `c${i}`))).toBe(out)
    })
  })
})
