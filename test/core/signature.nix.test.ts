/**
 * Signatures between b3 and real Nix 2.8, both ways: keys made by `nix-store
 * --generate-binary-cache-key` work in b3 and b3's keys work in Nix; narinfos Nix signed (`nix copy
 * --to file://…?secret-key=…`) verify in b3, and narinfos b3 signed are accepted by Nix's own check
 * (`nix copy --from file://…` with require-sigs), while tampered ones are refused by both.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { spawnSync } from "node:child_process"
import { Result } from "effect"
import * as CacheInfo from "../../src/core/cache-info.ts"
import * as NarInfo from "../../src/core/narinfo.ts"
import * as Signature from "../../src/core/signature.ts"
import { makeScratch, nixEnv, removeScratch } from "../support/nix.ts"
import { ok } from "./nix-helpers.ts"

const scratch = makeScratch("b3-sig-")
afterAll(() => removeScratch(scratch))

const nixRun = (cmd: string, args: ReadonlyArray<string>) => spawnSync(cmd, args, { env: nixEnv, maxBuffer: 1 << 30 })
const run = (cmd: string, args: ReadonlyArray<string>) => {
  const r = nixRun(cmd, args)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.toString()}`)
  return r.stdout.toString().trim()
}
const store = join(scratch, "store")
const nixKey = { secret: join(scratch, "nix.sk"), public: join(scratch, "nix.pk") }
let top = ""
let paths: Array<string> = []

/** A binary cache (file://) of `top`'s closure, copied by Nix, optionally signing with a secret key file. */
const makeCache = (name: string, secretKey?: string) => {
  const dir = join(scratch, name)
  run("nix", ["copy", "--from", store, "--to", `file://${dir}?compression=none${secretKey ? `&secret-key=${secretKey}` : ""}`, top])
  return dir
}
const narinfoFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".narinfo")).map((f) => join(dir, f))
/** Nix's own signature check: import the closure from the cache into a fresh store with require-sigs on. */
const nixImports = (cache: string, trustedKey: string) => {
  const r = nixRun("nix", ["copy", "--from", `file://${cache}`, "--to", join(scratch, `import-${Math.random().toString(36).slice(2)}`), top,
    "--option", "require-sigs", "true", "--option", "trusted-public-keys", trustedKey])
  return { ok: r.status === 0, stderr: r.stderr.toString() }
}

beforeAll(() => {
  // Two input-addressed outputs built by Nix (so they need signatures), `top` referring to `lib`.
  const bb = join(scratch, "bb")
  mkdirSync(join(bb, "bin"), { recursive: true })
  copyFileSync("/bin/busybox", join(bb, "bin/busybox"))
  symlinkSync("busybox", join(bb, "bin/sh"))
  const bbPath = run("nix-store", ["--store", store, "--add-fixed", "--recursive", "sha256", bb])
  const expr = join(scratch, "closure.nix")
  writeFileSync(expr, `let bb = builtins.storePath ${bbPath};
    mk = name: script: derivation { inherit name; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = [ "-c" script ]; };
    lib = mk "sig-lib" "\${bb}/bin/busybox mkdir $out; echo lib > $out/data";
  in mk "sig-top" "\${bb}/bin/busybox mkdir $out; echo \${lib} > $out/ref"`)
  top = run("nix-build", ["--store", store, "--option", "sandbox", "true", "--no-out-link", expr]).split("\n").pop()!
  paths = run("nix-store", ["--store", store, "-qR", top]).split("\n")
  run("nix-store", ["--generate-binary-cache-key", "nix-test-1", nixKey.secret, nixKey.public])
})

describe("signatures with real Nix", () => {
  it("reads Nix's keys; b3 derives the same public key and makes the same signatures", () => {
    const sk = ok(Signature.parseSecretKey(readFileSync(nixKey.secret, "utf8")))
    const pk = ok(Signature.parsePublicKey(readFileSync(nixKey.public, "utf8")))
    expect(Signature.printPublicKey(Signature.publicKeyOf(sk))).toBe(readFileSync(nixKey.public, "utf8"))
    expect(Signature.printSecretKey(sk)).toBe(readFileSync(nixKey.secret, "utf8"))
    const cache = makeCache("signed-by-nix", nixKey.secret)
    expect(ok(CacheInfo.parse(readFileSync(join(cache, "nix-cache-info"), "utf8"))).storeDir).toBe("/nix/store")
    const files = narinfoFiles(cache)
    expect(files).toHaveLength(paths.length)
    for (const file of files) {
      const text = readFileSync(file, "utf8")
      const info = ok(NarInfo.parse(text, { source: file }))
      expect(NarInfo.print(info)).toBe(text)
      expect(ok(NarInfo.verify(info, [pk]))).toBe("nix-test-1")
      // Ed25519 is deterministic: b3 signing with Nix's key reproduces Nix's signature.
      expect(NarInfo.sign({ ...info, sigs: [] }, sk).sigs).toEqual(info.sigs)
    }
  })

  it("Nix accepts what b3 signed with a b3 key, and refuses tampered or untrusted signatures", () => {
    const sk = Signature.generateSecretKey("b3-test-1")
    const pk = Signature.printPublicKey(Signature.publicKeyOf(sk))
    const cache = makeCache("signed-by-b3")
    for (const file of narinfoFiles(cache)) {
      const info = ok(NarInfo.parse(readFileSync(file, "utf8")))
      expect(info.sigs).toEqual([])
      writeFileSync(file, NarInfo.print(NarInfo.sign(info, sk)))
    }
    expect(nixImports(cache, pk)).toEqual({ ok: true, stderr: expect.any(String) })
    const untrusted = nixImports(cache, readFileSync(nixKey.public, "utf8"))
    expect(untrusted.ok).toBe(false)
    expect(untrusted.stderr).toMatch(/lacks a valid signature/)

    // Tamper with the signature of `top`: Nix refuses it, and so does b3.
    const tampered = join(scratch, "tampered")
    cpSync(cache, tampered, { recursive: true })
    const topFile = join(tampered, `${top.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`)
    const info = ok(NarInfo.parse(readFileSync(topFile, "utf8")))
    const other = NarInfo.sign(info, Signature.generateSecretKey("b3-test-1"))
    writeFileSync(topFile, NarInfo.print(other))
    const refused = nixImports(tampered, pk)
    expect(refused.ok).toBe(false)
    expect(refused.stderr).toMatch(/lacks a valid signature/)
    expect(Result.isFailure(NarInfo.verify(other, [Signature.publicKeyOf(sk)]))).toBe(true)
    expect(ok(NarInfo.verify(info, [Signature.publicKeyOf(sk)]))).toBe("b3-test-1")
  })
})
