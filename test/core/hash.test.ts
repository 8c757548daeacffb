import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Result } from "effect"
import * as Hash from "../../src/core/hash.ts"

const arbHash = fc.constantFrom(...Hash.hashAlgorithms).chain((algorithm) =>
  fc.uint8Array({ minLength: Hash.digestSize[algorithm], maxLength: Hash.digestSize[algorithm] })
    .map((bytes) => Hash.make(algorithm, bytes)))

describe("hashes", () => {
  it("computes digests Nix prints", () => {
    const h = Hash.hashBytes("sha256", "hello")
    expect(Hash.print(h, "base32")).toBe("sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic")
    expect(Hash.print(h, "sri")).toBe("sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
    expect(Hash.encode(Hash.hashBytes("md5", ""), "base16")).toBe("d41d8cd98f00b204e9800998ecf8427e")
  })

  it("incremental hashing equals one-shot hashing", () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
      const h = Hash.hasher("sha512")
      chunks.forEach(h.update)
      expect(Hash.equals(h.digest(), Hash.hashBytes("sha512", Buffer.concat(chunks)))).toBe(true)
    }))
  })

  it("round-trips every algorithm through every encoding", () => {
    fc.assert(fc.property(arbHash, fc.constantFrom(...Hash.hashEncodings), (hash, encoding) => {
      const printed = Hash.print(hash, encoding)
      const parsed = Hash.parse(printed)
      expect(Result.isSuccess(parsed) && Hash.equals(parsed.success, hash)).toBe(true)
      // a bare digest parses when the algorithm is known
      if (encoding !== "sri") {
        const bare = Hash.parse(Hash.encode(hash, encoding), hash.algorithm)
        expect(Result.isSuccess(bare) && Hash.equals(bare.success, hash)).toBe(true)
      }
    }))
  })

  it("compressHash XOR-folds", () => {
    const bytes = Uint8Array.from({ length: 32 }, (_, i) => i)
    const folded = Hash.compress(bytes, 20)
    expect(folded[0]).toBe(0 ^ 20)
    expect(folded[11]).toBe(11 ^ 31)
    expect(folded[12]).toBe(12)
  })

  it("rejects malformed hashes with a reason", () => {
    const cases: Array<[string, RegExp]> = [
      ["sha256:abc", /characters, not 3/],
      ["sha3:abc", /unknown hash algorithm 'sha3'/],
      ["0123", /no algorithm/],
      ["sha256-!!!!", /invalid character in Base64 string: '!'/],
      ["sha1:" + "g".repeat(40), /base16/],
      ["md5:" + "e".repeat(26), /not a nix-base32 character/],
      ["sha256-" + "A".repeat(43) + "B", /not a valid SRI sha256 digest \(33 bytes/],
      ["sha256:" + "A".repeat(43), /characters, not 43/]
    ]
    for (const [input, reason] of cases) {
      const r = Hash.parse(input)
      expect(Result.isFailure(r)).toBe(true)
      if (Result.isFailure(r)) {
        expect(r.failure._tag).toBe("InvalidHash")
        expect(r.failure.message).toMatch(reason)
      }
    }
    expect(Result.isFailure(Hash.parse("sha1:" + "0".repeat(40), "sha256"))).toBe(true)
  })

  it("gives a value or a typed error for any string", () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.string().map((s) => "sha256:" + s), fc.string().map((s) => "sha1-" + s)), (input) => {
      const r = Hash.parse(input)
      if (Result.isFailure(r)) expect(r.failure._tag).toBe("InvalidHash")
    }))
  })
})
