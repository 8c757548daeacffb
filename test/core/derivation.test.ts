import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Result } from "effect"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Drv from "../../src/core/derivation/index.ts"
import * as Json from "../../src/core/derivation/json-value.ts"
import { formatFixed6, formatNlohmann, formatShortest6 } from "../../src/core/derivation/number-format.ts"
import * as ByteString from "../../src/core/byte-string.ts"
import { compareUtf8 } from "../../src/core/derivation/utf8-order.ts"
import { arbDerivation, arbStorePath, arbText } from "./derivation-arbitraries.ts"
import { ok } from "./nix-helpers.ts"

/** Real .drv files written by nix-instantiate (Nix 2.8): a two-output input and a dependent with every kind of value. */
const depDrv = `Derive([("dev","/nix/store/75v4s3a601c6c1lmzsl5jx1hpcdgki2s-dep-dev","",""),("out","/nix/store/7rbrabjirgjnnlyb6pa5ryqi2614j9sb-dep","","")],[],[],"x86_64-linux","/bin/sh",["-c","echo"],[("builder","/bin/sh"),("dev","/nix/store/75v4s3a601c6c1lmzsl5jx1hpcdgki2s-dep-dev"),("name","dep"),("out","/nix/store/7rbrabjirgjnnlyb6pa5ryqi2614j9sb-dep"),("outputs","out dev"),("system","x86_64-linux")])`
const topDrv = `Derive([("out","/nix/store/41mjwbs5vyljz8r1p124d8j37m2ra07r-top","","")],[("/nix/store/gkp8bvakanvdn7ihl9p9b9jniz47zl44-dep.drv",["dev"])],["/nix/store/rp9zn8jrphhvrqnd6wazwbxrz63qfzj1-a.nix"],"x86_64-linux","/bin/sh",["-c","a\\"b\\\\c\\nd\\te\\rf é"],[("b","1"),("builder","/bin/sh"),("c",""),("f","1.500000"),("l","1 a 1   2 3"),("n","42"),("name","top"),("nul",""),("out","/nix/store/41mjwbs5vyljz8r1p124d8j37m2ra07r-top"),("src","/nix/store/rp9zn8jrphhvrqnd6wazwbxrz63qfzj1-a.nix"),("system","x86_64-linux"),("x","/nix/store/75v4s3a601c6c1lmzsl5jx1hpcdgki2s-dep-dev")])`
const depPath = "/nix/store/gkp8bvakanvdn7ihl9p9b9jniz47zl44-dep.drv"

describe("ATerm .drv format", () => {
  it("parses and re-prints Nix's own .drv files unchanged", () => {
    for (const text of [depDrv, topDrv]) expect(Drv.print(ok(Drv.parse(text)))).toBe(text)
    const top = ok(Drv.parse(topDrv, { name: "top" }))
    expect(top.args[1]).toBe("a\"b\\c\nd\te\rf é")
    expect(top.inputDrvs.get(depPath)).toEqual(["dev"])
  })

  it("parse ∘ print = id on generated derivations", () => {
    fc.assert(fc.property(arbDerivation, (drv) => {
      const text = Drv.print(drv)
      const parsed = ok(Drv.parse(text, { name: drv.name }))
      expect(parsed).toEqual(drv)
      expect(Drv.print(parsed)).toBe(text)
    }), { numRuns: 300 })
  })

  it("gives a derivation or an InvalidDerivation with an offset for any input, never an exception", () => {
    const valid = new TextEncoder().encode(topDrv)
    const mutated = fc.tuple(fc.nat(valid.length - 1), fc.nat(255), fc.constantFrom("replace", "delete", "insert", "truncate"))
      .map(([at, byte, how]) => {
        if (how === "truncate") return valid.slice(0, at)
        const out = [...valid]
        if (how === "replace") out[at] = byte
        else if (how === "delete") out.splice(at, 1)
        else out.splice(at, 0, byte)
        return new Uint8Array(out)
      })
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated, fc.string().map((s) => new TextEncoder().encode(`Derive([${s}`))), (bytes) => {
      const r = Drv.parse(bytes)
      if (Result.isFailure(r)) {
        expect(r.failure._tag).toBe("InvalidDerivation")
        expect(r.failure.offset).toBeGreaterThanOrEqual(0)
        expect(r.failure.offset).toBeLessThanOrEqual(bytes.length)
      }
    }), { numRuns: 2000 })
  })

  it("reports where and why a .drv is malformed", () => {
    const cases: Array<[string, number, RegExp]> = [
      ["Derive(", 0, /expected 'Derive\(\['/],
      [topDrv.slice(0, 50), 15, /unterminated string/],
      [topDrv + " ", new TextEncoder().encode(topDrv).length, /unexpected data/],
      [topDrv.replace("/nix/store/rp9", "/nix/stoer/rp9"), topDrv.indexOf("[\"/nix/store/rp9") + 1, /not in the store directory/],
      [depDrv.replace(`("dev","/nix`, `("out","/nix`), depDrv.indexOf(`,("out"`) + 1, /output 'out' appears twice/],
      [`Derive([("out","","sha3","")],[],[],"s","b",[],[])`, 8, /unknown hash algorithm 'sha3'/],
      [`Derive([("out","/x","r:sha256","")],[],[],"s","b",[],[])`, 8, /floating content-addressed output cannot have a path/],
      [`Derive([],[],[],"s","b",[],[])`, 8, /at least one output/],
      [`Derive([("out","","","")],[],[],"s","b",["a" "b"],[])`, 44, /expected ',' or '\]'/] // at the space after "a"
    ]
    for (const [text, offset, reason] of cases) {
      const r = Drv.parse(text)
      expect(Result.isFailure(r), text).toBe(true)
      if (Result.isFailure(r)) {
        expect(r.failure.reason).toMatch(reason)
        expect(r.failure.offset).toBe(offset)
        expect(r.failure.message).toMatch(/^invalid derivation/)
      }
    }
  })

  it("keeps bytes that are not UTF-8 and prints them back unchanged", () => {
    const enc = (s: string) => new TextEncoder().encode(s)
    const bytes = new Uint8Array([...enc(`Derive([("out","","","")],[],[],"s","`), 0xff, 0xe9, ...enc(`",["a`), 0x80, ...enc(`é"],[("k`), 0xe9, ...enc(`y","caf`), 0xe9, ...enc(`")])`)])
    const drv = ok(Drv.parse(bytes, { name: "x" }))
    expect(drv.builder).toBe("\udcff\udce9")
    expect(drv.args).toEqual(["a\udc80é"])
    expect(drv.env.get("k\udce9y")).toBe("caf\udce9")
    expect(Buffer.from(ByteString.encode(Drv.print(drv)))).toEqual(Buffer.from(bytes))
  })

  it("parses a large flat derivation without recursion", () => {
    const env = new Map(Array.from({ length: 50_000 }, (_, i) => [`v${i}`, "x".repeat(i % 100)] as [string, string]))
    const drv: Drv.Derivation = { name: "big", outputs: new Map([["out", Drv.deferred]]), inputDrvs: new Map(), inputSrcs: [], system: "s", builder: "b", args: [], env }
    expect(ok(Drv.parse(Drv.print(drv), { name: "big" })).env.size).toBe(50_000)
  })
})

describe("the nix show-derivation JSON form", () => {
  it("round-trips through JSON", () => {
    fc.assert(fc.property(arbDerivation, arbStorePath(StorePath.defaultStoreDir, ".drv"), (drv, path) => {
      const text = Drv.printShowDerivation([[path, drv]])
      const back = ok(Drv.parseShowDerivation(text)).get(path)!
      expect(Drv.print(back)).toBe(Drv.print(drv))
    }), { numRuns: 200 })
  })

  it("prints the shape Nix prints for each kind of output", () => {
    const sha = Hash.hashBytes("sha256", "x")
    const drv: Drv.Derivation = {
      name: "x", inputDrvs: new Map(), inputSrcs: [], system: "s", builder: "b", args: [], env: new Map([["k", "\u0001\"é"]]),
      outputs: new Map<string, Drv.DerivationOutput>([["a", Drv.deferred], ["b", Drv.floating("recursive", "sha256")], ["c", Drv.impure("flat", "sha1")], ["out", Drv.fixed("/nix/store/00000000000000000000000000000000-x", "flat", sha)]])
    }
    const json = JSON.parse(Drv.printShowDerivation([["/nix/store/00000000000000000000000000000000-x.drv", drv]]))
    expect(json["/nix/store/00000000000000000000000000000000-x.drv"].outputs).toEqual({
      a: {}, b: { hashAlgo: "r:sha256" }, c: { hashAlgo: "sha1", impure: true },
      out: { path: "/nix/store/00000000000000000000000000000000-x", hashAlgo: "sha256", hash: Hash.encode(sha, "base16") }
    })
    expect(Drv.printShowDerivation([["/nix/store/00000000000000000000000000000000-x.drv", drv]])).toContain(`"k": "\\u0001\\"é"`)
  })
})

describe("hashDerivationModulo and output paths", () => {
  const dep = ok(Drv.parse(depDrv, { name: "dep" }))
  const top = ok(Drv.parse(topDrv, { name: "top" }))

  it("computes the output paths Nix recorded, reading inputs through lookup", () => {
    const lookup = (p: string) => (p === depPath ? dep : undefined)
    expect([...ok(Drv.checkOutputs(top, { lookup }))]).toEqual([["out", "/nix/store/41mjwbs5vyljz8r1p124d8j37m2ra07r-top"]])
    expect([...ok(Drv.checkOutputs(dep))].sort()).toEqual([
      ["dev", "/nix/store/75v4s3a601c6c1lmzsl5jx1hpcdgki2s-dep-dev"], ["out", "/nix/store/7rbrabjirgjnnlyb6pa5ryqi2614j9sb-dep"]])
  })

  it("reports a missing input as MissingDerivation, and a wrong recorded path", () => {
    const r = Drv.hashDerivationModulo(top, false)
    expect(Result.isFailure(r) && r.failure._tag).toBe("MissingDerivation")
    const env = new Map(dep.env).set("out", "/nix/store/00000000000000000000000000000000-dep")
    const bad = Drv.checkOutputs({ ...dep, env })
    expect(Result.isFailure(bad) && bad.failure.message).toMatch(/environment variable 'out' should be/)
  })

  it("hashes a fixed-output derivation by its output alone", () => {
    const fo = ok(Drv.derivation({ name: "fo", system: "s", builder: "/b", outputHashMode: "flat", outputHashAlgo: "sha1", outputHash: "0000000000000000000000000000000000000000" }))
    const h = ok(Drv.hashDerivationModulo(fo.derivation, false))
    expect(Hash.encode(h.hashes.get("out")!, "base16")).toBe(Hash.encode(Hash.hashBytes("sha256",
      `fixed:out:sha1:0000000000000000000000000000000000000000:${fo.outputPaths.out}`), "base16"))
    // A different builder does not change the hash, so dependents do not change either.
    const fo2 = ok(Drv.derivation({ name: "fo", system: "s", builder: "/other", outputHashMode: "flat", outputHashAlgo: "sha1", outputHash: "0000000000000000000000000000000000000000" }))
    const user = (d: Drv.BuiltDerivation) => ok(Drv.derivation({ name: "user", system: "s", builder: "/b", src: d.outputs.out }))
    expect(user(fo2).outputPaths.out).toBe(user(fo).outputPaths.out)
    expect(user(fo2).drvPath).not.toBe(user(fo).drvPath)
  })

  it("memoises over a deep chain of inputs without overflowing the stack, and detects cycles", () => {
    const n = 20_000
    const drvs = new Map<string, Drv.Derivation>()
    let prev: string | undefined
    for (let i = 0; i < n; i++) {
      const path = `/nix/store/${Hash.encode(Hash.hashBytes("sha1", String(i)), "base32")}-d${i}.drv`
      drvs.set(path, { name: `d${i}`, outputs: new Map([["out", Drv.deferred]]), inputDrvs: new Map(prev ? [[prev, ["out"]]] : []), inputSrcs: [], system: "s", builder: "b", args: [], env: new Map() })
      prev = path
    }
    let lookups = 0
    const cache = new Map<string, Drv.DrvHash>()
    const r = Drv.hashDerivationModulo(drvs.get(prev!)!, true, { lookup: (p) => { lookups++; return drvs.get(p) }, cache })
    expect(Result.isSuccess(r)).toBe(true)
    expect(lookups).toBe(n - 1)
    expect(cache.size).toBe(n - 1)
    const [a, b] = [...drvs.keys()]
    const cyclic = new Map(drvs).set(a!, { ...drvs.get(a!)!, inputDrvs: new Map([[b!, ["out"]]]) })
    const c = Drv.hashDerivationModulo(cyclic.get(b!)!, false, { lookup: (p) => cyclic.get(p) })
    expect(Result.isFailure(c) && c.failure.message).toMatch(/cycle/)
  })
})

describe("the derivation API", () => {
  it("builds the derivations nix-instantiate wrote, byte for byte", () => {
    const dep = ok(Drv.derivation({ name: "dep", system: "x86_64-linux", builder: "/bin/sh", args: ["-c", "echo"], outputs: ["out", "dev"] }))
    expect(dep.aterm).toBe(depDrv)
    expect(dep.drvPath).toBe(depPath)
    const top = ok(Drv.derivation({
      name: "top", system: "x86_64-linux", builder: "/bin/sh", args: ["-c", "a\"b\\c\nd\te\rf é"],
      x: dep.outputs.dev, n: 42, f: 1.5, b: true, c: false, nul: null, l: [1, "a", true, false, null, [2, 3]],
      src: Drv.storePath("/nix/store/rp9zn8jrphhvrqnd6wazwbxrz63qfzj1-a.nix")
    }))
    expect(top.aterm).toBe(topDrv)
    expect(top.drvPath).toBe("/nix/store/p33kxwcn53kh8cs12cx3hpg574khx4hg-top.drv")
    expect(String(top)).toBe("/nix/store/41mjwbs5vyljz8r1p124d8j37m2ra07r-top")
  })

  it("tracks references through str`…` and whole derivations, and drops nulls with __ignoreNulls", () => {
    const dep = ok(Drv.derivation({ name: "dep", system: "s", builder: "/b", outputs: ["lib", "out"] }))
    const d = ok(Drv.derivation({ name: "d", system: "s", builder: Drv.str`${dep.outputs.out}/bin/sh`, args: [Drv.str`-L${dep}`], gone: null, __ignoreNulls: true }))
    expect(d.derivation.builder).toBe(`${dep.outputPaths.out}/bin/sh`)
    expect(d.derivation.args).toEqual([`-L${dep.outputPaths.lib}`])
    expect([...d.derivation.inputDrvs.get(dep.drvPath)!].sort()).toEqual(["lib", "out"])
    expect(d.derivation.env.has("gone")).toBe(false)
  })

  it("refuses what Nix refuses, with the attribute at fault", () => {
    const cases: Array<[Drv.DerivationAttrs, RegExp]> = [
      [{ name: "x", system: "s", builder: "" }, /required attribute 'builder' missing/],
      [{ name: "x", system: "", builder: "/b" }, /required attribute 'system' missing/],
      [{ name: "x.drv", system: "s", builder: "/b" }, /not allowed to end in '.drv'/],
      [{ name: "a b", system: "s", builder: "/b" }, /illegal character/],
      [{ name: "x", system: "s", builder: "/b", outputs: ["out", "out"] }, /duplicate derivation output 'out'/],
      [{ name: "x", system: "s", builder: "/b", outputs: [] }, /empty set of outputs/],
      [{ name: "x", system: "s", builder: "/b", outputs: ["out", "dev"], outputHash: "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=" }, /multiple outputs/],
      [{ name: "x", system: "s", builder: "/b", outputHash: "nothash" }, /outputHash/],
      [{ name: "x", system: "s", builder: "/b", outputHashMode: "deep" as never }, /invalid value 'deep'/],
      [{ name: "x", system: "s", builder: "/b", obj: { a: 1 } }, /cannot coerce a set/],
      [{ name: "x", system: "s", builder: "/b", __contentAddressed: true, __impure: true }, /both content-addressed and impure/]
    ]
    for (const [attrs, reason] of cases) {
      const r = Drv.derivation(attrs)
      expect(Result.isFailure(r), JSON.stringify(attrs)).toBe(true)
      if (Result.isFailure(r)) {
        expect(r.failure._tag).toBe("InvalidDerivationArgs")
        expect(r.failure.message).toMatch(reason)
      }
    }
  })

  it("gives floating content-addressed outputs placeholders, and defers dependents", () => {
    const ca = ok(Drv.derivation({ name: "ca", system: "s", builder: "/b", __contentAddressed: true, outputs: ["out", "dev"] }))
    expect(ca.derivation.env.get("out")).toBe(Drv.hashPlaceholder("out"))
    expect(Drv.hashPlaceholder("out")).toHaveLength(53)
    expect(ca.outputPaths.dev).toBe(Drv.downstreamPlaceholder(ca.drvPath, "dev"))
    const user = ok(Drv.derivation({ name: "user", system: "s", builder: "/b", x: ca.outputs.dev }))
    expect(user.derivation.outputs.get("out")).toEqual(Drv.deferred)
    expect(user.derivation.env.get("out")).toBe("")
  })
})

describe("numbers as Nix prints them", () => {
  // Expected values are glibc printf's ("%f", "%g") and nlohmann::json's output for the same doubles.
  const cases: Array<[number, string, string, string]> = [
    [1.5, "1.500000", "1.5", "1.5"], [1234567, "1234567.000000", "1.23457e+06", "1234567.0"], [0.0001, "0.000100", "0.0001", "0.0001"],
    [0.00001, "0.000010", "1e-05", "1e-05"], [1e30, "1000000000000000019884624838656.000000", "1e+30", "1e+30"],
    [0.125, "0.125000", "0.125", "0.125"], [1234565, "1234565.000000", "1.23456e+06", "1234565.0"], [999999.5, "999999.500000", "1e+06", "999999.5"],
    [-2.5e-7, "-0.000000", "-2.5e-07", "-2.5e-07"], [1e-320, "0.000000", "9.99989e-321", "1e-320"], [2, "2.000000", "2", "2.0"]
  ]
  it.each(cases)("%d", (x, fixed, shortest, nlohmann) => {
    expect([formatFixed6(x), formatShortest6(x), formatNlohmann(x)]).toEqual([fixed, shortest, nlohmann])
  })
})

describe("JSON values", () => {
  it("keeps integers exact and floats as floats, and parses what it prints", () => {
    const text = `{"a":[1,2.0,-9223372036854775808,18446744073709551615,1e400],"b":{"z":null,"a":"\\u00e9\\ud83d\\ude00"}}`
    expect(Result.isFailure(Json.parse(text))).toBe(true) // 1e400 overflows, as in nlohmann
    const v = ok(Json.parse(text.replace(",1e400", "")))
    expect(Json.printNlohmann(v)).toBe(`{"a":[1,2.0,-9223372036854775808,18446744073709551615],"b":{"a":"é😀","z":null}}`)
    const arbJson = fc.letrec<{ v: Json.JsonValue }>((tie) => ({
      v: fc.oneof({ depthSize: "small" }, fc.constant(null), fc.boolean(), arbText, fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
        fc.double({ noNaN: true, noDefaultInfinity: true }), fc.array(tie("v"), { maxLength: 4 }),
        fc.uniqueArray(fc.tuple(arbText, tie("v")), { maxLength: 4, selector: ([k]) => k }).map((es) => new Map(es.sort(([a], [b]) => compareUtf8(a, b)))))
    })).v
    fc.assert(fc.property(arbJson, (j) => {
      expect(Json.printNlohmann(ok(Json.parse(Json.printNlohmann(j))))).toBe(Json.printNlohmann(j))
    }))
    fc.assert(fc.property(fc.string(), (s) => { Json.parse(s) }))
    expect(Result.isSuccess(Json.parse("[".repeat(200_000) + "]".repeat(200_000)))).toBe(true)
  })
})

describe("structured attributes", () => {
  it("writes .attrs.json and .attrs.sh as Nix 2.8 does (expected text from a real sandboxed build)", () => {
    const sa = ok(Drv.derivation({
      name: "sa", system: "x86_64-linux", builder: "/bin/sh", __structuredAttrs: true, outputs: ["out", "lib"],
      big: 123456789012, j: 1e30, neg: -5, s: "a'b", fl: [1, "x", null, false], o: { z: 1, a: "x'", "b c": true }, "bad-key": 1, nested: [[1]]
    }))
    const files = ok(Drv.structuredAttrsFiles(sa.derivation))!
    expect(files.shell).toBe([
      "declare big=-1097262572", "declare builder='/bin/sh'", "declare -a fl=(1 'x' ''  )", "declare j=-2147483648", "declare name='sa'", "declare neg=-5",
      "declare -A o=(['a']='x'\\''' ['b c']=1 ['z']=1 )",
      `declare -A outputs=(['lib']='${sa.outputPaths.lib}' ['out']='${sa.outputPaths.out}' )`,
      "declare s='a'\\''b'", "declare system='x86_64-linux'", ""
    ].join("\n"))
    expect(JSON.parse(files.json).outputs).toEqual({ lib: sa.outputPaths.lib, out: sa.outputPaths.out })
  })
})
