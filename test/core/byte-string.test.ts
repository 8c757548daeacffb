import { describe, expect, it } from "vitest"
import fc from "fast-check"
import * as ByteString from "../../src/core/byte-string.ts"

const latin1AndUtf8 = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }).map((s) => new TextEncoder().encode(s)),
  fc.array(fc.oneof(fc.string({ unit: "binary", maxLength: 4 }).map((s) => [...new TextEncoder().encode(s)]), fc.uint8Array({ maxLength: 3 }).map((b) => [...b])), { maxLength: 8 })
    .map((parts) => Uint8Array.from(parts.flat()))
)

describe("lossless byte strings", () => {
  it("round-trips any bytes", () => {
    fc.assert(fc.property(latin1AndUtf8, (bytes) => {
      expect(Buffer.from(ByteString.encode(ByteString.decode(bytes)))).toEqual(Buffer.from(bytes))
      expect(ByteString.byteLength(ByteString.decode(bytes))).toBe(bytes.length)
    }), { numRuns: 2000 })
  })

  it("decodes UTF-8 as text and escapes every other byte", () => {
    expect(ByteString.decode(Buffer.from("café"))).toBe("café")
    expect(ByteString.decode(Uint8Array.of(0x63, 0xe9))).toBe("c\udce9")
    // overlong, surrogate and truncated sequences are bytes, not characters
    expect(ByteString.decode(Uint8Array.of(0xc0, 0x80))).toBe("\udcc0\udc80")
    expect(ByteString.decode(Uint8Array.of(0xed, 0xa0, 0x80))).toBe("\udced\udca0\udc80")
    expect(ByteString.decode(Uint8Array.of(0xf0, 0x9f, 0x98))).toBe("\udcf0\udc9f\udc98")
    expect(ByteString.decode(Uint8Array.of(0xf0, 0x9f, 0x98, 0x80))).toBe("😀")
  })

  it("orders strings by their bytes", () => {
    fc.assert(fc.property(latin1AndUtf8, latin1AndUtf8, (a, b) => {
      const expected = Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)))
      expect(Math.sign(ByteString.compare(ByteString.decode(a), ByteString.decode(b)))).toBe(expected)
    }), { numRuns: 3000 })
  })
})
