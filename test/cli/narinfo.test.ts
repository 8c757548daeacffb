import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3, runB3 } from "../support/b3.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"

const scratch = makeScratch("b3-cli-narinfo-")
afterAll(() => removeScratch(scratch))

const sk = join(scratch, "nix.sk")
const pk = join(scratch, "nix.pk")
const cache = join(scratch, "cache")
let narinfo = ""
let nixText = ""

beforeAll(() => {
  nix("nix-store", ["--generate-binary-cache-key", "nix-cli-1", sk, pk])
  const file = join(scratch, "data.txt")
  writeFileSync(file, "some data\n")
  const store = join(scratch, "store")
  const path = nix("nix-store", ["--store", store, "--add", file])
  nix("nix", ["copy", "--from", store, "--to", `file://${cache}?compression=none&secret-key=${sk}`, path])
  narinfo = join(cache, readdirSync(cache).find((f) => f.endsWith(".narinfo"))!)
  nixText = readFileSync(narinfo, "utf8")
})

describe("b3 narinfo", () => {
  it("verify prints the name of the trusted key that signed it", () => {
    const other = join(scratch, "other.pk")
    nix("nix-store", ["--generate-binary-cache-key", "other-1", join(scratch, "other.sk"), other])
    expect(b3(["narinfo", "verify", "--trusted-key", readFileSync(other, "utf8"), "--trusted-key", readFileSync(pk, "utf8"), narinfo])).toBe("nix-cli-1")
  })

  it("verify exits 4 with one line for an untrusted key or a tampered narinfo, 2 for a malformed one", () => {
    const other = join(scratch, "o2.pk")
    nix("nix-store", ["--generate-binary-cache-key", "o2", join(scratch, "o2.sk"), other])
    const untrusted = runB3(["narinfo", "verify", "--trusted-key", readFileSync(other, "utf8"), narinfo])
    expect(untrusted.status).toBe(4)
    expect(untrusted.stderr).toMatch(/^b3: signature check failed for '\/nix\/store\/.*-data\.txt': no signature by a trusted key \(signed by: nix-cli-1\)\n$/)
    const tampered = join(scratch, "tampered.narinfo")
    writeFileSync(tampered, nixText.replace(/NarSize: (\d+)/, (_, n) => `NarSize: ${Number(n) + 1}`))
    const r = runB3(["narinfo", "verify", "--trusted-key", readFileSync(pk, "utf8"), tampered])
    expect(r.status).toBe(4)
    expect(r.stderr).toMatch(/does not match the narinfo's contents/)
    const malformed = join(scratch, "malformed.narinfo")
    writeFileSync(malformed, nixText.replace(/^NarHash: .*\n/m, ""))
    expect(runB3(["narinfo", "verify", "--trusted-key", readFileSync(pk, "utf8"), malformed]).status).toBe(2)
  })

  it("sign with Nix's key reproduces the narinfo Nix signed, byte for byte", () => {
    const copy = join(scratch, "unsigned.narinfo")
    writeFileSync(copy, nixText.replace(/^Sig: .*\n/m, ""))
    b3(["narinfo", "sign", "--key-file", sk, copy])
    expect(readFileSync(copy, "utf8")).toBe(nixText)
  })
})
