import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Result } from "effect"
import * as CacheInfo from "../../src/core/cache-info.ts"
import * as ContentAddress from "../../src/core/content-address.ts"
import * as Hash from "../../src/core/hash.ts"
import * as NarInfo from "../../src/core/narinfo.ts"
import * as Signature from "../../src/core/signature.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { arbStorePath } from "./derivation-arbitraries.ts"
import { ok } from "./nix-helpers.ts"

/** Written by Nix 2.8 (`nix copy --to file://…?compression=none&secret-key=…`). */
const nixNarInfo = `StorePath: /nix/store/k74f2v5i75lk41j37drcshrwg2pzws3s-sb
URL: nar/039ah9npzfg09v1hyklr8lxwzc1xq6rwg8w94i87a5874n9q8vmb.nar
Compression: none
FileHash: sha256:039ah9npzfg09v1hyklr8lxwzc1xq6rwg8w94i87a5874n9q8vmb
FileSize: 2040
NarHash: sha256:039ah9npzfg09v1hyklr8lxwzc1xq6rwg8w94i87a5874n9q8vmb
NarSize: 2040
References: b8zzzm23p9pd6h8zbaiz806gqid7q81v-bb ix5j8v7qsffdi1x7lq66vh3414hlzpxw-sb-lib k74f2v5i75lk41j37drcshrwg2pzws3s-sb
Deriver: gh3n6c22xvkllq0xgjkjikg78i27ygfa-sb.drv
Sig: test-1:DSBUHB9jGy8EWJhZTjGCCl+ANsBQBi8X4AzLlID4pUu9AI58A71WT4UxAot0hwdMUwjdBNK+OWTCG8yY/tSAAw==
`
const nixPublicKey = "test-1:sbsKZew+p0ES3FcGRMCTIn1pVOY8YcqnouSPXR6kswM="
const nixCaNarInfo = `StorePath: /nix/store/b8zzzm23p9pd6h8zbaiz806gqid7q81v-bb
URL: nar/0m54h46i7lwk20d2vihhq0fq7ns5ypg44viy8bxxnfqpz3y9a10x.nar
Compression: none
FileHash: sha256:0m54h46i7lwk20d2vihhq0fq7ns5ypg44viy8bxxnfqpz3y9a10x
FileSize: 1982928
NarHash: sha256:0m54h46i7lwk20d2vihhq0fq7ns5ypg44viy8bxxnfqpz3y9a10x
NarSize: 1982928
References: 
Sig: test-1:v9vDwpCXG8v7eINiNjvu8mV1O/Tf/1LKzoiWtt6Q9yjBVoMrSttnaQ5VduD630F+/rIXn9KC2XVMeMou3CvwDA==
CA: fixed:r:sha256:0m54h46i7lwk20d2vihhq0fq7ns5ypg44viy8bxxnfqpz3y9a10x
`

const arbHash = (algorithms: ReadonlyArray<Hash.HashAlgorithm>) => fc.constantFrom(...algorithms)
  .chain((a) => fc.uint8Array({ minLength: Hash.digestSize[a], maxLength: Hash.digestSize[a] }).map((b) => Hash.make(a, b)))
const baseName = (p: string) => p.slice(p.lastIndexOf("/") + 1)
const arbSig = fc.tuple(fc.stringMatching(/^[a-z0-9.-]{1,12}$/), fc.uint8Array({ minLength: 64, maxLength: 64 })).map(([n, b]) => `${n}:${Buffer.from(b).toString("base64")}`)
const arbCa = fc.oneof(
  arbHash(["sha256"]).map(ContentAddress.text),
  fc.tuple(fc.constantFrom("flat" as const, "recursive" as const), arbHash(Hash.hashAlgorithms)).map(([m, h]) => ContentAddress.fixed(m, h)))
const arbNarInfo: fc.Arbitrary<NarInfo.NarInfo> = fc.record({
  storePath: arbStorePath(),
  url: fc.stringMatching(/^nar\/[a-z0-9]{1,52}\.nar(\.xz|\.zst)?$/),
  compression: fc.constantFrom("none", "xz", "zstd", "bzip2", "br"),
  fileHash: arbHash(["sha256"]),
  fileSize: fc.nat(),
  narHash: arbHash(["sha256"]),
  narSize: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  references: fc.uniqueArray(arbStorePath().map(baseName), { maxLength: 5 }).map((r) => r.sort()),
  deriver: arbStorePath(StorePath.defaultStoreDir, ".drv").map(baseName),
  system: fc.constantFrom("x86_64-linux", "aarch64-darwin"),
  sigs: fc.uniqueArray(arbSig, { maxLength: 3 }).map((s) => s.sort()),
  ca: arbCa
}, { requiredKeys: ["storePath", "url", "compression", "narHash", "narSize", "references", "sigs"] })

describe("narinfo", () => {
  it("re-prints Nix's narinfo files unchanged", () => {
    for (const text of [nixNarInfo, nixCaNarInfo]) expect(NarInfo.print(ok(NarInfo.parse(text)))).toBe(text)
  })

  it("parse ∘ print = id on generated values, and print ∘ parse = id on their text", () => {
    fc.assert(fc.property(arbNarInfo, (info) => {
      const text = NarInfo.print(info)
      const parsed = ok(NarInfo.parse(text))
      expect(parsed).toEqual(info)
      expect(NarInfo.print(parsed)).toBe(text)
    }))
  })

  it("accepts fields in any order, ignores unknown ones and defaults Compression to bzip2", () => {
    const lines = nixNarInfo.trimEnd().split("\n").filter((l) => !l.startsWith("Compression"))
    const shuffled = [...lines.reverse(), "Unknown: field"].join("\n") + "\n"
    const info = ok(NarInfo.parse(shuffled))
    expect(info.compression).toBe("bzip2")
    expect(NarInfo.print(info)).toBe(nixNarInfo.replace("Compression: none", "Compression: bzip2"))
  })

  it("requires StorePath, URL, NarHash and NarSize and checks every value", () => {
    const without = (field: string) => nixNarInfo.split("\n").filter((l) => !l.startsWith(`${field}:`)).join("\n")
    const replace = (field: string, value: string) => nixNarInfo.replace(new RegExp(`^${field}: .*$`, "m"), `${field}: ${value}`)
    const cases: Array<[string, RegExp]> = [
      [without("StorePath"), /StorePath field is missing/], [without("URL"), /URL/], [without("NarHash"), /NarHash field is missing/],
      [without("NarSize"), /NarSize/], [replace("NarSize", "0"), /NarSize/], [replace("NarSize", "-1"), /not a size/],
      [replace("NarHash", "sha256:xyz"), /NarHash/], [replace("NarHash", "0m54h46i7lwk20d2vihhq0fq7ns5ypg44viy8bxxnfqpz3y9a10x"), /NarHash/],
      [replace("FileSize", "12a"), /FileSize/], [replace("References", "not-a-path"), /References/], [replace("Deriver", "x"), /Deriver/],
      [replace("StorePath", "/other/k74f2v5i75lk41j37drcshrwg2pzws3s-sb"), /StorePath/], [nixNarInfo + "CA: bogus\n", /CA/],
      [nixNarInfo + "NarSize: 2\n", /appears twice/], [nixNarInfo.trimEnd(), /newline/], ["garbage\n", /not '<Field>: <value>'/]
    ]
    for (const [text, reason] of cases) {
      const r = NarInfo.parse(text, { source: "x.narinfo" })
      expect(Result.isFailure(r), reason.source).toBe(true)
      if (Result.isFailure(r)) {
        expect(r.failure._tag).toBe("InvalidNarInfo")
        expect(r.failure.message).toMatch(reason)
      }
    }
  })

  it("gives a value or an InvalidNarInfo for any input, never an exception", () => {
    const fields = ["StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize", "References", "Deriver", "System", "Sig", "CA", "X"]
    const arbLines = fc.array(fc.tuple(fc.constantFrom(...fields), fc.string()).map(([f, v]) => `${f}: ${v}`), { maxLength: 12 }).map((ls) => ls.join("\n") + "\n")
    fc.assert(fc.property(fc.oneof(fc.string(), arbLines), (text) => {
      const r = NarInfo.parse(text)
      if (Result.isFailure(r)) expect(r.failure._tag).toBe("InvalidNarInfo")
      else expect(NarInfo.parse(NarInfo.print(r.success))).toEqual(r)
    }), { numRuns: 2000 })
  })

  it("verifies Nix's signature and names the key; tampering with any signed field breaks it", () => {
    const key = ok(Signature.parsePublicKey(nixPublicKey))
    const info = ok(NarInfo.parse(nixNarInfo))
    expect(ok(NarInfo.verify(info, [key]))).toBe("test-1")
    expect(NarInfo.fingerprint(info)).toBe("1;/nix/store/k74f2v5i75lk41j37drcshrwg2pzws3s-sb;sha256:039ah9npzfg09v1hyklr8lxwzc1xq6rwg8w94i87a5874n9q8vmb;2040;" +
      "/nix/store/b8zzzm23p9pd6h8zbaiz806gqid7q81v-bb,/nix/store/ix5j8v7qsffdi1x7lq66vh3414hlzpxw-sb-lib,/nix/store/k74f2v5i75lk41j37drcshrwg2pzws3s-sb")
    const tampered: Array<NarInfo.NarInfo> = [
      { ...info, storePath: "/nix/store/k74f2v5i75lk41j37drcshrwg2pzws3s-sc" },
      { ...info, narHash: Hash.hashBytes("sha256", "other") },
      { ...info, narSize: info.narSize + 1 },
      { ...info, references: info.references.slice(1) },
      { ...info, references: [...info.references, "00000000000000000000000000000000-x"] },
      { ...info, sigs: info.sigs.map((s) => s.replace("DSB", "DSC")) }
    ]
    for (const t of tampered) {
      const r = NarInfo.verify(t, [key])
      expect(Result.isFailure(r) && r.failure._tag).toBe("SignatureError")
      if (Result.isFailure(r)) expect(r.failure.message).toMatch(/does not match/)
    }
    const other = Signature.publicKeyOf(Signature.generateSecretKey("other-1"))
    const r = NarInfo.verify(info, [other])
    expect(Result.isFailure(r) && r.failure.message).toMatch(/no signature by a trusted key \(signed by: test-1\)/)
    const unsigned = NarInfo.verify({ ...info, sigs: [] }, [key])
    expect(Result.isFailure(unsigned) && unsigned.failure.message).toMatch(/no signatures/)
  })

  it("knows which paths are content-addressed (accepted without signatures)", () => {
    expect(NarInfo.isContentAddressed(ok(NarInfo.parse(nixCaNarInfo)))).toBe(true)
    expect(NarInfo.isContentAddressed(ok(NarInfo.parse(nixNarInfo)))).toBe(false)
    const lying = { ...ok(NarInfo.parse(nixCaNarInfo)), storePath: "/nix/store/b8zzzm23p9pd6h8zbaiz806gqid7q81v-bc" }
    expect(NarInfo.isContentAddressed(lying)).toBe(false)
  })
})

describe("signing keys", () => {
  it("generates, prints, parses and signs; signatures are deterministic and verify", () => {
    const sk = Signature.generateSecretKey("cache.example.org-1")
    const printed = Signature.printSecretKey(sk)
    expect(printed).toMatch(/^cache\.example\.org-1:[A-Za-z0-9+/]{86}==$/)
    expect(ok(Signature.parseSecretKey(printed + "\n"))).toEqual(sk)
    const pk = Signature.publicKeyOf(sk)
    expect(ok(Signature.parsePublicKey(Signature.printPublicKey(pk)))).toEqual(pk)
    fc.assert(fc.property(fc.string(), (data) => {
      const sig = Signature.signDetached(sk, data)
      expect(Signature.signDetached(sk, data)).toBe(sig)
      expect(Signature.verifyDetached(data, sig, [pk])).toBe("cache.example.org-1")
      expect(Signature.verifyDetached(data + "x", sig, [pk])).toBeUndefined()
    }), { numRuns: 50 })
  })

  it("rejects malformed keys with a reason, and never throws on any input", () => {
    const sk = Signature.printSecretKey(Signature.generateSecretKey("k"))
    const mismatched = `k:${Buffer.concat([Buffer.from(sk.slice(2), "base64").subarray(0, 32), Buffer.alloc(32)]).toString("base64")}`
    const cases: Array<[string, RegExp]> = [["nokey", /'<name>:<base64>'/], [":AAAA", /'<name>:<base64>'/], ["k:!!!", /base64/], ["k:AAAA", /64 bytes, not 3/], [mismatched, /does not match/]]
    for (const [text, reason] of cases) {
      const r = Signature.parseSecretKey(text)
      expect(Result.isFailure(r) && r.failure.message).toMatch(reason)
    }
    expect(Result.isFailure(Signature.parsePublicKey(sk))).toBe(true)
    fc.assert(fc.property(fc.string(), fc.string(), (a, b) => {
      Signature.parsePublicKey(a)
      Signature.parseSecretKey(a)
      expect(Signature.verifyDetached(a, b, [Signature.publicKeyOf(Signature.generateSecretKey("x"))])).toBeUndefined()
    }), { numRuns: 300 })
  })
})

describe("nix-cache-info", () => {
  it("parses what Nix writes and round-trips", () => {
    expect(ok(CacheInfo.parse("StoreDir: /nix/store\n"))).toEqual({ storeDir: "/nix/store" })
    const full = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
    expect(CacheInfo.print(ok(CacheInfo.parse(full)))).toBe(full)
    expect(ok(CacheInfo.parse("Priority:  10 \nno colon here\nOther: x\n"))).toEqual({ priority: 10 })
    fc.assert(fc.property(fc.record({ storeDir: fc.constantFrom("/nix/store", "/b3/store"), wantMassQuery: fc.boolean(), priority: fc.integer({ min: -1000, max: 1000 }) }, { requiredKeys: [] }), (info) => {
      expect(ok(CacheInfo.parse(CacheInfo.print(info)))).toEqual(info)
    }))
    for (const bad of ["StoreDir: relative\n", "WantMassQuery: yes\n", "Priority: high\n"]) {
      expect(Result.isFailure(CacheInfo.parse(bad))).toBe(true)
    }
    fc.assert(fc.property(fc.string(), (s) => { CacheInfo.parse(s) }))
  })
})
