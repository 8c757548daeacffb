import { afterAll, describe, expect, it } from "vitest"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3, runB3 } from "../support/b3.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

describe("b3 hash", () => {
  it("hash file prints what nix hash file prints, in every encoding and algorithm", () => {
    const file = join(scratch, "data")
    writeFileSync(file, Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) & 0xff)))
    for (const type of ["md5", "sha1", "sha256", "sha512"]) {
      for (const enc of ["--base16", "--base32", "--base64", "--sri"]) {
        expect(b3(["hash", "file", "--type", type, enc, file])).toBe(nix("nix", ["hash", "file", "--type", type, enc, file]))
      }
    }
  })

  it("hash convert turns any form into any other, as nix hash to-* does", () => {
    const sri = "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
    expect(b3(["hash", "convert", "--to", "base32", sri])).toBe(`sha256:${nix("nix", ["hash", "to-base32", sri])}`)
    expect(b3(["hash", "convert", "--to", "base16", sri])).toBe(`sha256:${nix("nix", ["hash", "to-base16", sri])}`)
    expect(b3(["hash", "convert", "--to", "sri", "sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"])).toBe(sri)
    expect(b3(["hash", "convert", "--type", "sha256", "--to", "sri", "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic"])).toBe(sri)
  })

  it("bad input is one line on stderr with exit code 2; a missing file exits 3", () => {
    const bad = runB3(["hash", "convert", "--to", "base32", "sha256:nothex"])
    expect(bad.status).toBe(2)
    expect(bad.stderr.trim().split("\n")).toHaveLength(1)
    expect(bad.stderr).toMatch(/^b3: invalid hash 'sha256:nothex'/)
    const flag = runB3(["hash", "file", "--type", "sha3", "x"])
    expect(flag.status).toBe(2)
    expect(flag.stderr).toMatch(/--type/)
    const missing = runB3(["hash", "file", join(scratch, "absent")])
    expect(missing.status).toBe(3)
    expect(missing.stderr).toMatch(/absent/)
    expect(missing.stderr).not.toMatch(/\n\s+at /)
  })
})
