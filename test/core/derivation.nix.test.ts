/**
 * Derivations built with b3's `derivation` API against the ones real Nix 2.8 instantiates from the
 * same (generated) Nix expressions: `.drv` path, `.drv` bytes and output paths must be equal; b3's
 * printer must re-print every `.drv` Nix wrote, and its JSON must be `nix show-derivation`'s bytes.
 * Also a sandboxed structured-attrs build whose `.attrs.json`/`.attrs.sh` must equal ours.
 */
import { afterAll, describe, expect, it } from "vitest"
import fc from "fast-check"
import { mkdirSync, readFileSync, writeFileSync, copyFileSync, symlinkSync } from "node:fs"
import { join } from "node:path"
import { Result } from "effect"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Drv from "../../src/core/derivation/index.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"
import { ok, runNix } from "./nix-helpers.ts"
import { arbName } from "./derivation-arbitraries.ts"

const seed = Date.now() % 2 ** 31
console.log(`derivation conformance seed: ${seed}`)
const scratch = makeScratch("b3-drv-")
afterAll(() => removeScratch(scratch))

const run = runNix

// ---------------------------------------------------------------------------------------------
// A small description of derivations, rendered both as a Nix expression and as b3 API calls.

type Val =
  | { t: "str"; s: string }
  | { t: "int"; n: bigint }
  | { t: "float"; x: number }
  | { t: "bool"; b: boolean }
  | { t: "null" }
  | { t: "list"; items: Array<Val> }
  | { t: "ref"; dep: number; output: number; whole: boolean }
  | { t: "interp"; before: string; dep: number; output: number; after: string }
  | { t: "src"; idx: number }
  | { t: "set"; entries: Array<[string, Val]> }

type Kind =
  | { k: "ia"; outputs: Array<string> | undefined }
  | { k: "fixed"; mode: "flat" | "recursive" | undefined; algo: Hash.HashAlgorithm; digest: Uint8Array; form: "base16" | "base32" | "prefixed" | "sri"; giveAlgo: boolean }
  | { k: "ca"; mode: "flat" | "recursive" | undefined; algo: "sha256" | "sha512" | undefined; outputs: Array<string> | undefined }

interface Spec {
  readonly name: string
  readonly kind: Kind
  readonly structured: boolean
  readonly ignoreNulls: boolean
  readonly builderDep: { dep: number; output: number } | undefined
  readonly args: Array<Val>
  readonly attrs: Array<[string, Val]>
  /** Build for real: builder is busybox sh from this store path, and the script copies the structured-attrs files. */
  readonly busybox?: string
}

/** The build script of `busybox` specs, as text and output placeholders. */
const buildScript = (bb: string): Array<string | { placeholder: string }> => [
  `B=${bb}/bin/busybox; $B mkdir `, { placeholder: "out" }, " ", { placeholder: "lib" }, "; $B cp .attrs.json .attrs.sh ", { placeholder: "out" }, "/"
]

const textUnit = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("\"", "\\", "\n", "\t", "\r", "$", "${", "{", "}", "é", "😀", "\u0001", "\u007f", "\u{10ffff}", " ", "'", "a") },
  { weight: 3, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((c) => c !== "\0") }
)
const arbText = fc.string({ unit: textUnit, maxLength: 12 })
const arbKey = fc.string({ unit: textUnit, minLength: 0, maxLength: 6 }).map((s) => `k${s}`)
const arbFloat = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0.125, 1.5, 1234567, 0.1, 1e30, 1e-7, 999999.5, 2))
  // Nix's lexer rejects subnormal literals (strtod reports ERANGE).
  .map((x) => (Object.is(x, -0) || Math.abs(x) < 2.2250738585072014e-308 ? 0 : x))

const arbVal = (structured: boolean): fc.Arbitrary<Val> => fc.letrec<{ v: Val }>((tie) => ({
  v: fc.oneof({ depthSize: "small", maxDepth: 3 },
    arbText.map((s): Val => ({ t: "str", s })),
    fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }).map((n): Val => ({ t: "int", n })),
    arbFloat.map((x): Val => ({ t: "float", x })),
    fc.boolean().map((b): Val => ({ t: "bool", b })),
    fc.constant<Val>({ t: "null" }),
    fc.record({ dep: fc.nat(99), output: fc.nat(9), whole: fc.boolean() }).map((r): Val => ({ t: "ref", ...r })),
    fc.record({ before: arbText, dep: fc.nat(99), output: fc.nat(9), after: arbText }).map((r): Val => ({ t: "interp", ...r })),
    fc.nat(2).map((idx): Val => ({ t: "src", idx })),
    fc.array(tie("v"), { maxLength: 4 }).map((items): Val => ({ t: "list", items })),
    ...(structured ? [fc.uniqueArray(fc.tuple(arbKey, tie("v")), { maxLength: 3, selector: ([k]) => k }).map((entries): Val => ({ t: "set", entries }))] : [])
  )
})).v

const arbOutputs = fc.option(fc.shuffledSubarray(["out", "dev", "lib", "doc", "bin"], { minLength: 1 }), { nil: undefined })
const arbKind: fc.Arbitrary<Kind> = fc.oneof(
  { weight: 4, arbitrary: arbOutputs.map((outputs): Kind => ({ k: "ia", outputs })) },
  { weight: 2, arbitrary: fc.constantFrom(...Hash.hashAlgorithms).chain((algo) => fc.record({
    k: fc.constant("fixed" as const), mode: fc.constantFrom("flat" as const, "recursive" as const, undefined), algo: fc.constant(algo),
    digest: fc.uint8Array({ minLength: Hash.digestSize[algo], maxLength: Hash.digestSize[algo] }),
    form: fc.constantFrom("base16" as const, "base32" as const, "prefixed" as const, "sri" as const), giveAlgo: fc.boolean()
  })) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("ca" as const), mode: fc.constantFrom("flat" as const, "recursive" as const, undefined), algo: fc.constantFrom("sha256" as const, "sha512" as const, undefined), outputs: arbOutputs }) }
)
const arbSpec: fc.Arbitrary<Spec> = fc.boolean().chain((structured) => fc.record({
  name: arbName.filter((n) => !n.endsWith(".drv") && n.length < 150),
  kind: arbKind,
  structured: fc.constant(structured),
  ignoreNulls: fc.boolean(),
  builderDep: fc.option(fc.record({ dep: fc.nat(99), output: fc.nat(9) }), { nil: undefined }),
  args: fc.array(arbVal(false), { maxLength: 3 }),
  attrs: fc.uniqueArray(fc.tuple(arbKey, arbVal(structured)), { maxLength: 6, selector: ([k]) => k })
}))

const srcs = [{ name: "src-a", text: "source a\n" }, { name: "src-b.sh", text: "echo ${x} \"quoted\"\n" }, { name: "c", text: "" }]

const outputsOf = (spec: Spec): Array<string> => spec.kind.k === "fixed" ? ["out"] : spec.kind.outputs ?? ["out"]

// --- Nix rendering
const nixStr = (s: string) => `"${s.replace(/[\\"$\n\r\t]/g, (c) => ({ "\\": "\\\\", "\"": "\\\"", "$": "\\$", "\n": "\\n", "\r": "\\r", "\t": "\\t" })[c]!)}"`
const nixFloat = (x: number) => {
  if (x === 0) return "0.0"
  const [m, e] = Math.abs(x).toExponential().split("e") as [string, string]
  const lit = `${m.includes(".") ? m : `${m}.0`}e${e}`
  return x < 0 ? `(-${lit})` : lit
}

const renderNix = (graph: ReadonlyArray<Spec>, g: number): string => {
  const depName = (i: number, dep: number) => `g${g}d${dep % i}`
  const depOutput = (i: number, dep: number, output: number) => { const outs = outputsOf(graph[dep % i]!); return outs[output % outs.length]! }
  const val = (v: Val, i: number): string => {
    switch (v.t) {
      case "str": return nixStr(v.s)
      case "int": return v.n < 0n ? `(${v.n})` : `${v.n}`
      case "float": return nixFloat(v.x)
      case "bool": return String(v.b)
      case "null": return "null"
      case "list": return `[ ${v.items.map((x) => val(x, i)).join(" ")} ]`
      case "ref": return i === 0 ? nixStr("no-dep") : v.whole ? depName(i, v.dep) : `${depName(i, v.dep)}.${depOutput(i, v.dep, v.output)}`
      case "interp": return i === 0 ? nixStr(v.before + v.after)
        : `(${nixStr(v.before)} + "\${${depName(i, v.dep)}.${depOutput(i, v.dep, v.output)}}" + ${nixStr(v.after)})`
      case "src": return `s${v.idx}`
      case "set": return `{ ${v.entries.map(([k, x]) => `${nixStr(k)} = ${val(x, i)};`).join(" ")} }`
    }
  }
  const drv = (spec: Spec, i: number): string => {
    const attrs: Array<string> = [`name = ${nixStr(spec.name)};`, `system = "x86_64-linux";`]
    if (spec.busybox !== undefined) {
      attrs.push(`builder = "\${builtins.storePath ${spec.busybox}}/bin/sh";`)
      attrs.push(`args = [ "-c" (${buildScript(spec.busybox).map((p) => typeof p === "string" ? nixStr(p) : `builtins.placeholder "${p.placeholder}"`).join(" + ")}) ];`)
    } else {
      attrs.push(`builder = ${spec.builderDep && i > 0 ? `"\${${depName(i, spec.builderDep.dep)}.${depOutput(i, spec.builderDep.dep, spec.builderDep.output)}}/bin/sh"` : `"/bin/sh"`};`)
      if (spec.args.length > 0) attrs.push(`args = [ ${spec.args.map((a) => val(a, i)).join(" ")} ];`)
    }
    if (spec.structured) attrs.push("__structuredAttrs = true;")
    if (spec.ignoreNulls) attrs.push("__ignoreNulls = true;")
    const kind = spec.kind
    if (kind.k === "fixed") {
      const h = Hash.make(kind.algo, kind.digest)
      const hash = kind.form === "sri" ? Hash.encode(h, "sri") : kind.form === "prefixed" ? Hash.print(h, "base32") : Hash.encode(h, kind.form)
      attrs.push(`outputHash = ${nixStr(hash)};`)
      if (kind.giveAlgo || kind.form === "base16" || kind.form === "base32") attrs.push(`outputHashAlgo = "${kind.algo}";`)
      if (kind.mode) attrs.push(`outputHashMode = "${kind.mode}";`)
    } else {
      if (kind.outputs) attrs.push(`outputs = [ ${kind.outputs.map(nixStr).join(" ")} ];`)
      if (kind.k === "ca") {
        attrs.push("__contentAddressed = true;")
        if (kind.mode) attrs.push(`outputHashMode = "${kind.mode}";`)
        if (kind.algo) attrs.push(`outputHashAlgo = "${kind.algo}";`)
      }
    }
    for (const [k, v] of spec.attrs) attrs.push(`${nixStr(k)} = ${val(v, i)};`)
    return `g${g}d${i} = derivation { ${attrs.join(" ")} };`
  }
  return graph.map(drv).join("\n")
}

// --- b3 rendering
const concat = (...parts: ReadonlyArray<Drv.StringLike>) =>
  Drv.str(Object.assign(["", ...parts.map(() => "")], { raw: ["", ...parts.map(() => "")] }) as unknown as TemplateStringsArray, ...parts)

const buildOurs = (graph: ReadonlyArray<Spec>, storeDir: string): Array<Drv.BuiltDerivation> => {
  const srcPaths = srcs.map((s) => Drv.storePath(StorePath.print(StorePath.makeText(s.name, Hash.hashBytes("sha256", s.text), [], storeDir), storeDir)))
  const built: Array<Drv.BuiltDerivation> = []
  const depOutput = (i: number, dep: number, output: number) => { const d = built[dep % i]!; return d.outputs[d.outputNames[output % d.outputNames.length]!]! }
  const val = (v: Val, i: number): Drv.Value => {
    switch (v.t) {
      case "str": return v.s
      case "int": return Number.isSafeInteger(Number(v.n)) ? Number(v.n) : v.n
      case "float": return Number.isInteger(v.x) ? Drv.float(v.x) : v.x
      case "bool": return v.b
      case "null": return null
      case "list": return v.items.map((x) => val(x, i))
      case "ref": return i === 0 ? "no-dep" : v.whole ? built[v.dep % i]! : depOutput(i, v.dep, v.output)
      case "interp": return i === 0 ? v.before + v.after : concat(v.before, depOutput(i, v.dep, v.output), v.after)
      case "src": return srcPaths[v.idx]!
      case "set": return Object.fromEntries(v.entries.map(([k, x]) => [k, val(x, i)]))
    }
  }
  graph.forEach((spec, i) => {
    const attrs: Record<string, Drv.Value> = {}
    for (const [k, v] of spec.attrs) attrs[k] = val(v, i)
    const kind = spec.kind
    const extra: Record<string, Drv.Value> = {}
    if (kind.k === "fixed") {
      const h = Hash.make(kind.algo, kind.digest)
      extra.outputHash = kind.form === "sri" ? Hash.encode(h, "sri") : kind.form === "prefixed" ? Hash.print(h, "base32") : Hash.encode(h, kind.form)
      if (kind.giveAlgo || kind.form === "base16" || kind.form === "base32") extra.outputHashAlgo = kind.algo
      if (kind.mode) extra.outputHashMode = kind.mode
    } else {
      if (kind.outputs) extra.outputs = kind.outputs
      if (kind.k === "ca") {
        extra.__contentAddressed = true
        if (kind.mode) extra.outputHashMode = kind.mode
        if (kind.algo) extra.outputHashAlgo = kind.algo
      }
    }
    const builder = spec.busybox !== undefined ? concat(Drv.storePath(spec.busybox), "/bin/sh")
      : spec.builderDep && i > 0 ? concat(depOutput(i, spec.builderDep.dep, spec.builderDep.output), "/bin/sh") : "/bin/sh"
    const args = spec.busybox !== undefined ? ["-c", buildScript(spec.busybox).map((p) => typeof p === "string" ? p : Drv.hashPlaceholder(p.placeholder)).join("")]
      : spec.args.map((a) => val(a, i))
    built.push(ok(Drv.derivation({
      ...attrs, ...extra, name: spec.name, system: "x86_64-linux", builder,
      ...(args.length > 0 ? { args } : {}),
      ...(spec.structured ? { __structuredAttrs: true } : {}),
      ...(spec.ignoreNulls ? { __ignoreNulls: true } : {})
    }, { storeDir })))
  })
  return built
}

// ---------------------------------------------------------------------------------------------

const graphs = fc.sample(fc.array(arbSpec, { minLength: 1, maxLength: 6 }), { numRuns: 40, seed })

describe.each([StorePath.defaultStoreDir, "/b3/other-store"])("derivations in %s", (storeDir) => {
  const root = join(scratch, storeDir.replaceAll("/", "_"))
  const store = storeDir === StorePath.defaultStoreDir ? root : `local?root=${root}&store=${storeDir}`
  mkdirSync(root, { recursive: true })
  const expr = join(root, "graphs.nix")
  writeFileSync(expr, [
    "let",
    ...srcs.map((s, i) => `s${i} = builtins.toFile ${nixStr(s.name)} ${nixStr(s.text)};`),
    ...graphs.map((graph, g) => renderNix(graph, g)),
    `show = d: { drvPath = d.drvPath; outputs = builtins.listToAttrs (map (o: { name = o; value = d.\${o}.outPath; }) (d.outputs or [ "out" ])); };`,
    `all = [ ${graphs.map((graph, g) => graph.map((_, i) => `g${g}d${i}`).join(" ")).join(" ")} ];`,
    `in { shown = [ ${graphs.map((graph, g) => `[ ${graph.map((_, i) => `(show g${g}d${i})`).join(" ")} ]`).join(" ")} ]; inherit all; }`
  ].join("\n"))
  let evaluated: Array<Array<{ drvPath: string; outputs: Record<string, string> }>> | undefined
  // --eval runs read-only, so instantiate (write the .drv files) first, then evaluate the paths.
  const nixResult = () => evaluated ??= (() => {
    run("nix-instantiate", ["--store", store, "-A", "all", expr])
    return JSON.parse(run("nix-instantiate", ["--store", store, "--eval", "--strict", "--json", "-A", "shown", expr])) as Array<Array<{ drvPath: string; outputs: Record<string, string> }>>
  })()
  const onDisk = (path: string) => readFileSync(join(root, "nix/store", path.slice(storeDir.length + 1)))

  it("gives the same .drv paths, .drv bytes and output paths as nix-instantiate", () => {
    let count = 0
    graphs.forEach((graph, g) => {
      const ours = buildOurs(graph, storeDir)
      ours.forEach((drv, i) => {
        const theirs = nixResult()[g]![i]!
        const context = `graph ${g} derivation ${i}: ${JSON.stringify(graph[i], (_, v) => typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)}`
        expect(drv.aterm, context).toBe(onDisk(theirs.drvPath).toString("utf8"))
        expect(drv.drvPath, context).toBe(theirs.drvPath)
        expect({ ...drv.outputPaths }, context).toEqual(theirs.outputs)
        count++
      })
    })
    expect(count).toBeGreaterThan(40)
  })

  it("re-prints every .drv Nix wrote unchanged, checks its outputs, and prints nix show-derivation's bytes", () => {
    const paths = nixResult().flat().map((d) => d.drvPath)
    const byPath = new Map<string, Drv.Derivation>()
    for (const path of paths) {
      const bytes = onDisk(path)
      const drv = ok(Drv.parse(bytes, { name: Drv.nameFromDrvPath(path), storeDir, source: path }))
      expect(Drv.print(drv)).toBe(bytes.toString("utf8"))
      byPath.set(path, drv)
    }
    const lookup = (p: string) => byPath.get(p)
    const cache = new Map<string, Drv.DrvHash>()
    for (const [path, drv] of byPath) {
      const outputs = ok(Drv.checkOutputs(drv, { lookup, cache, storeDir }))
      const nixOutputs = nixResult().flat().find((d) => d.drvPath === path)!.outputs
      for (const [name, p] of outputs) if (p !== undefined) expect(nixOutputs[name]).toBe(p)
    }
    const unique = [...new Set(paths)]
    const theirs = run("nix", ["show-derivation", "--store", store, ...unique])
    expect(Drv.printShowDerivation(unique.map((p) => [p, byPath.get(p)!]))).toBe(theirs)
    expect(ok(Drv.parseShowDerivation(theirs, { storeDir })).size).toBe(unique.length)
  })
})

describe("structured attributes in a real sandboxed build", () => {
  it("writes the .attrs.json and .attrs.sh the builder gets", () => {
    const root = join(scratch, "build")
    const bbDir = join(scratch, "bb")
    mkdirSync(join(bbDir, "bin"), { recursive: true })
    copyFileSync("/bin/busybox", join(bbDir, "bin/busybox"))
    symlinkSync("busybox", join(bbDir, "bin/sh"))
    const bb = run("nix-store", ["--store", root, "--add-fixed", "--recursive", "sha256", bbDir]).trim()
    const [values] = fc.sample(fc.uniqueArray(fc.tuple(arbKey.map((k) => k.replace(/[^A-Za-z0-9_]/g, "_")), arbVal(true)), { maxLength: 12, selector: ([k]) => k }), { numRuns: 1, seed })
    const fixedAttrs: Array<[string, Val]> = [
      ["big", { t: "int", n: 123456789012n }], ["neg", { t: "int", n: -5n }], ["fl", { t: "float", x: 1.5 }], ["two", { t: "float", x: 2 }],
      ["e30", { t: "float", x: 1e30 }], ["list", { t: "list", items: [{ t: "int", n: 1n }, { t: "str", s: "x'y" }, { t: "null" }, { t: "bool", b: false }] }],
      ["obj", { t: "set", entries: [["z", { t: "int", n: 1n }], ["a b", { t: "str", s: "q'" }]] }], ["bad-key", { t: "int", n: 1n }], ["src", { t: "src", idx: 1 }]
    ]
    const attrs = [...fixedAttrs, ...values!.filter(([k]) => !fixedAttrs.some(([f]) => f === k))]
    const spec: Spec = { name: "sattrs", kind: { k: "ia", outputs: ["out", "lib"] }, structured: true, ignoreNulls: false, builderDep: undefined, args: [], attrs, busybox: bb }
    const expr = join(scratch, "sattrs.nix")
    writeFileSync(expr, `let ${srcs.map((s, i) => `s${i} = builtins.toFile ${nixStr(s.name)} ${nixStr(s.text)};`).join(" ")} ${renderNix([spec], 0)} in g0d0`)
    const out = run("nix-build", ["--store", root, "--option", "sandbox", "true", "--no-out-link", expr]).trim().split("\n").pop()!
    const [ours] = buildOurs([spec], StorePath.defaultStoreDir)
    expect(ours!.outputPaths.out).toBe(out)
    const files = ok(Drv.structuredAttrsFiles(ours!.derivation))!
    expect(files.json).toBe(readFileSync(join(root, out.slice(1), ".attrs.json"), "utf8"))
    expect(files.shell).toBe(readFileSync(join(root, out.slice(1), ".attrs.sh"), "utf8"))
  })
})
