/** The malformed corpus against `nix-store --restore`: we reject everything Nix rejects, and more. */
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { decodeNarBytes } from "../../src/nar/decode.ts"
import { makeScratch, nixEnv, removeScratch } from "../support/nix.ts"
import { malformed, sampleNar } from "./corpus.ts"

const scratch = makeScratch("b3-nar-bad-")
afterAll(() => removeScratch(scratch))

const nixRestores = (nar: Uint8Array, target: string): boolean =>
  spawnSync("nix-store", ["--restore", target], { input: nar, env: nixEnv }).status === 0

describe("malformed NARs vs nix-store --restore", () => {
  it("Nix rejects every case not marked as accepted by it; we reject all of them", () => {
    malformed.forEach((c, i) => {
      expect(decodeNarBytes(c.bytes).error, c.name).toBeDefined()
      expect(nixRestores(c.bytes, join(scratch, `case-${i}`)), c.name).toBe(c.nixAccepts === true)
    })
  })

  it("Nix also rejects the sample NAR truncated at field boundaries, and accepts it whole", () => {
    const nar = sampleNar()
    expect(nixRestores(nar, join(scratch, "whole"))).toBe(true)
    for (let cut = 0; cut < nar.length; cut += 8) {
      expect(nixRestores(nar.subarray(0, cut), join(scratch, `cut-${cut}`)), `cut at ${cut}`).toBe(false)
    }
  })
})
