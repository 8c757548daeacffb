import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { Result } from "effect"
import * as NixBase32 from "../../src/core/nixbase32.ts"

describe("nix-base32", () => {
  it("matches values Nix prints", () => {
    // nix-hash --type sha256 --to-base32 $(echo -n hello | sha256sum)
    const bytes = Buffer.from("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "hex")
    expect(NixBase32.encode(bytes)).toBe("094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic")
    expect(NixBase32.encode(new Uint8Array(20))).toBe("00000000000000000000000000000000")
    expect(NixBase32.encode(new Uint8Array([0xff]))).toBe("7z")
  })

  it("round-trips any byte string", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      const text = NixBase32.encode(bytes)
      expect(text.length).toBe(NixBase32.encodedLength(bytes.length))
      const back = NixBase32.decode(text, bytes.length)
      expect(Result.isSuccess(back) && Buffer.from(back.success).equals(bytes)).toBe(true)
    }))
  })

  it("rejects characters outside the alphabet and overflowing high bits", () => {
    for (const bad of ["e", "o", "u", "t", "E", "_", "é"]) {
      const r = NixBase32.decode(bad + "0", 1)
      expect(Result.isFailure(r) && r.failure._tag).toBe("InvalidEncoding")
    }
    // "80" would need a 9th bit in a one-byte value.
    expect(Result.isFailure(NixBase32.decode("80", 1))).toBe(true)
    expect(Result.isFailure(NixBase32.decode("000", 1))).toBe(true)
  })

  it("gives a value or a typed error for any string", () => {
    fc.assert(fc.property(fc.string({ maxLength: 120 }), fc.integer({ min: 0, max: 64 }), (text, size) => {
      const r = NixBase32.decode(text, size)
      if (Result.isFailure(r)) expect(r.failure._tag).toBe("InvalidEncoding")
      else expect(NixBase32.encode(r.success)).toBe(text)
    }))
  })
})
