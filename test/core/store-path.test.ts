import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Result } from "effect"
import * as ContentAddress from "../../src/core/content-address.ts"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"

const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?="
export const arbName = fc.tuple(
  fc.constantFrom(...nameChars.replace(".", "")),
  fc.string({ unit: fc.constantFrom(...nameChars), maxLength: 60 })
).map(([first, rest]) => first + rest)

const arbStorePath = fc.tuple(
  fc.uint8Array({ minLength: 20, maxLength: 20 }),
  arbName
).map(([digest, name]): StorePath.StorePath => ({ hashPart: Hash.encode(Hash.make("sha1", digest), "base32"), name }))

describe("store paths", () => {
  it("computes the path of a known content-addressed input (from Nix 2.8)", () => {
    const ca = Result.getOrThrow(ContentAddress.parse("fixed:r:sha256:0m54h46i7lwk20d2vihhq0fq7ns5ypg44viy8bxxnfqpz3y9a10x"))
    expect(StorePath.print(ContentAddress.storePath(ca, "bb"))).toBe("/nix/store/b8zzzm23p9pd6h8zbaiz806gqid7q81v-bb")
  })

  it("parses what it prints, in any store dir", () => {
    fc.assert(fc.property(arbStorePath, fc.constantFrom("/nix/store", "/b3/store", "/tmp/x/y"), (path, storeDir) => {
      const printed = StorePath.print(path, storeDir)
      const parsed = StorePath.parse(printed, storeDir)
      expect(Result.isSuccess(parsed) && StorePath.equals(parsed.success, path)).toBe(true)
    }))
  })

  it("rejects bad paths and names with a reason", () => {
    const hash = "0".repeat(32)
    const cases: Array<[string, RegExp]> = [
      [`/nix/store/${hash}-a b`, /illegal character ' '/],
      [`/nix/store/${hash}-`, /expected/],
      [`/nix/store/${hash}-${"a".repeat(212)}`, /longer than 211/],
      [`/nix/store/${"e".repeat(32)}-x`, /not nix-base32/],
      [`/nix/store/${hash}-x/sub`, /directly inside/],
      [`/other/${hash}-x`, /not in the store directory/],
      [`/nix/store/${hash}-é`, /illegal character 'é'/]
    ]
    for (const [input, reason] of cases) {
      const r = StorePath.parse(input)
      expect(Result.isFailure(r)).toBe(true)
      if (Result.isFailure(r)) expect(r.failure.message).toMatch(reason)
    }
    expect(Result.isSuccess(StorePath.parse(`/nix/store/${hash}-${"a".repeat(211)}`))).toBe(true)
    // Nix 2.8 allows names that start with a period (nix-store --add .gitignore); see test/nix/names.nix.test.ts
    for (const name of [".gitignore", "...", ".", ".."]) expect(Result.isSuccess(StorePath.parse(`/nix/store/${hash}-${name}`))).toBe(true)
  })

  it("validates store dirs", () => {
    expect(Result.isSuccess(StorePath.validateStoreDir("/my/store"))).toBe(true)
    for (const bad of ["relative", "/", "/a/", "/a//b", "/a/./b", "/a/../b"]) {
      expect(Result.isFailure(StorePath.validateStoreDir(bad))).toBe(true)
    }
  })

  it("gives a value or a typed error for any string", () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.string().map((s) => "/nix/store/" + s)), (input) => {
      const r = StorePath.parse(input)
      if (Result.isFailure(r)) expect(r.failure._tag).toBe("InvalidStorePath")
      else expect(StorePath.print(r.success)).toBe(input)
    }))
  })
})

describe("content addresses", () => {
  it("round-trips", () => {
    const arbCa = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => ContentAddress.text(Hash.make("sha256", b))),
      fc.tuple(fc.constantFrom("flat" as const, "recursive" as const), fc.constantFrom(...Hash.hashAlgorithms))
        .chain(([method, algo]) => fc.uint8Array({ minLength: Hash.digestSize[algo], maxLength: Hash.digestSize[algo] })
          .map((b) => ContentAddress.fixed(method, Hash.make(algo, b))))
    )
    fc.assert(fc.property(arbCa, (ca) => {
      const printed = ContentAddress.print(ca)
      const parsed = ContentAddress.parse(printed)
      expect(Result.isSuccess(parsed) && ContentAddress.print(parsed.success)).toBe(printed)
    }))
  })

  it("rejects what is not a content address", () => {
    for (const bad of ["", "fixed:", "text:sha1:0000000000000000000000000000000000000000", "nar:sha256:x", "fixed:r:sha256:zz"]) {
      const r = ContentAddress.parse(bad)
      expect(Result.isFailure(r) && r.failure._tag).toBe("InvalidContentAddress")
    }
  })
})
