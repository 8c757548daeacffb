/** Realisations: the `.doi` JSON Nix 2.8 writes to binary caches, read and printed byte for byte; signatures. */
import { describe, expect, it } from "vitest"
import { Result } from "effect"
import * as Realisation from "../../src/core/realisation.ts"
import * as Signature from "../../src/core/signature.ts"
import { hashModulo } from "../../src/nar/hash-modulo.ts"
import * as Hash from "../../src/core/hash.ts"

// Written by `nix copy --to file://…` of a floating content-addressed derivation built by Nix 2.8.
const withDeps = `{"dependentRealisations":{"sha256:799fe06fdc962ea772f11113eaf7f88316a2d7cc41eacdcd4f27073b160fb49a!out":"zwwsb1xins0g7gz5bw0y5qz3c5xx9w2x-a"},"id":"sha256:189c09b1b0206cc81f92c7dae2aee71c67585e08a441776e26ffc7412b177a05!out","outPath":"xd7zd3zaishxpns601hdv3kjgjqjvfji-b","signatures":[]}`
const plain = `{"dependentRealisations":{},"id":"sha256:799fe06fdc962ea772f11113eaf7f88316a2d7cc41eacdcd4f27073b160fb49a!out","outPath":"zwwsb1xins0g7gz5bw0y5qz3c5xx9w2x-a","signatures":[]}`

describe("realisations", () => {
  it("reads and prints Nix's .doi files byte for byte", () => {
    for (const text of [withDeps, plain]) {
      const r = Result.getOrThrow(Realisation.parse(text))
      expect(Realisation.print(r)).toBe(text)
    }
    const r = Result.getOrThrow(Realisation.parse(withDeps))
    expect(r.id.outputName).toBe("out")
    expect(Realisation.printDrvOutput(r.id)).toBe("sha256:189c09b1b0206cc81f92c7dae2aee71c67585e08a441776e26ffc7412b177a05!out")
    expect([...r.dependentRealisations.keys()]).toEqual(["sha256:799fe06fdc962ea772f11113eaf7f88316a2d7cc41eacdcd4f27073b160fb49a!out"])
    expect(Realisation.fingerprint(r)).toBe(withDeps.replace(`,"signatures":[]`, ""))
  })

  it("accepts what Nix accepts: optional fields, any hash encoding in ids; rejects the rest with a reason", () => {
    const minimal = Result.getOrThrow(Realisation.parse(`{"id":"sha256-eZ/gb9yWLqdy8RET6vf4gxai18xB6s3NTycHOxYPtJo=!dev","outPath":"zwwsb1xins0g7gz5bw0y5qz3c5xx9w2x-a"}`))
    expect(Realisation.printDrvOutput(minimal.id)).toBe("sha256:799fe06fdc962ea772f11113eaf7f88316a2d7cc41eacdcd4f27073b160fb49a!dev")
    for (const [text, reason] of [
      [`{"outPath":"zwwsb1xins0g7gz5bw0y5qz3c5xx9w2x-a"}`, /missing field id/],
      [`{"id":"sha256:799fe06fdc962ea772f11113eaf7f88316a2d7cc41eacdcd4f27073b160fb49a","outPath":"zwwsb1xins0g7gz5bw0y5qz3c5xx9w2x-a"}`, /'<hash>!<output name>'/],
      [`{"id":"799fe06fdc962ea772f11113eaf7f88316a2d7cc41eacdcd4f27073b160fb49a!out","outPath":"zwwsb1xins0g7gz5bw0y5qz3c5xx9w2x-a"}`, /no algorithm/],
      [`{"id":"sha256:799fe06fdc962ea772f11113eaf7f88316a2d7cc41eacdcd4f27073b160fb49a!out","outPath":"/nix/store/x"}`, /invalid store path/],
      [`[1]`, /JSON object/],
      [`{`, /not JSON/]
    ] as const) {
      const r = Realisation.parse(text)
      expect(Result.isFailure(r) && r.failure.message).toMatch(reason)
    }
  })

  it("signs the fingerprint; a signature by a trusted key verifies, a changed realisation does not", () => {
    const key = Signature.generateSecretKey("b3-test-1")
    const signed = Realisation.sign(Result.getOrThrow(Realisation.parse(withDeps)), key)
    expect(signed.signatures).toHaveLength(1)
    const back = Result.getOrThrow(Realisation.parse(Realisation.print(signed)))
    expect(Realisation.validSignatures(back, [Signature.publicKeyOf(key)])).toEqual(["b3-test-1"])
    const other = Result.getOrThrow(Realisation.parse(plain))
    expect(Realisation.validSignatures({ ...other, signatures: signed.signatures }, [Signature.publicKeyOf(key)])).toEqual([])
  })

  it("hashes modulo a self-reference as Nix's HashModuloSink (NUL bytes, then |offset for each)", () => {
    const part = "zwwsb1xins0g7gz5bw0y5qz3c5xx9w2x"
    const data = Buffer.from(`ab${part}cd${part}`)
    const h = hashModulo("sha256", part)
    h.update(data.subarray(0, 10)); h.update(data.subarray(10, 40)); h.update(data.subarray(40))
    const expected = Hash.hashBytes("sha256", Buffer.concat([Buffer.from("ab"), Buffer.alloc(32), Buffer.from("cd"), Buffer.alloc(32), Buffer.from("|2|36")]))
    expect(Hash.equals(h.digest(), expected)).toBe(true)
  })
})
