import { afterAll, describe, expect, it } from "vitest"
import { readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3, runB3 } from "../support/b3.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"

const scratch = makeScratch("b3-cli-key-")
afterAll(() => removeScratch(scratch))

describe("b3 key", () => {
  it("generate writes a key pair in Nix's format that Nix can sign with", () => {
    const [sk, pk] = [join(scratch, "b3.sk"), join(scratch, "b3.pk")]
    b3(["key", "generate", "--name", "b3-cli-1", "--secret", sk, "--public", pk])
    expect(readFileSync(pk, "utf8")).toMatch(/^b3-cli-1:[A-Za-z0-9+/]{43}=$/)
    expect(readFileSync(sk, "utf8")).toMatch(/^b3-cli-1:[A-Za-z0-9+/]{86}==$/)
    expect(statSync(sk).mode & 0o777).toBe(0o600)
    expect(b3(["key", "public", sk])).toBe(readFileSync(pk, "utf8"))
    // Nix signs a path with b3's secret key, and checks it with b3's public key.
    const file = join(scratch, "hello.txt")
    writeFileSync(file, "hello\n")
    const store = join(scratch, "store")
    const path = nix("nix-store", ["--store", store, "--add", file])
    nix("nix", ["store", "sign", "--store", store, "--key-file", sk, path])
    const sigs = JSON.parse(nix("nix", ["path-info", "--store", store, "--json", path]))[0].signatures as Array<string>
    expect(sigs.some((s) => s.startsWith("b3-cli-1:"))).toBe(true)
    nix("nix", ["store", "verify", "--store", store, "--no-contents", "--sigs-needed", "1", "--option", "trusted-public-keys", readFileSync(pk, "utf8"), path])
  })

  it("public reads Nix's secret keys; bad keys exit 2", () => {
    const [sk, pk] = [join(scratch, "nix.sk"), join(scratch, "nix.pk")]
    nix("nix-store", ["--generate-binary-cache-key", "nix-cli-1", sk, pk])
    expect(b3(["key", "public", sk])).toBe(readFileSync(pk, "utf8"))
    const bad = runB3(["key", "public", pk])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/^b3: invalid key '<secret key>': a secret key has 64 bytes, not 32\n$/)
    expect(runB3(["key", "generate", "--name", "a:b", "--secret", join(scratch, "x"), "--public", join(scratch, "y")]).status).toBe(2)
  })
})
