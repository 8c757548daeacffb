/**
 * Hash strings at the edges of what Nix 2.8 accepts (`Hash::parseAny`), as a table: each one
 * through `nix hash to-base16` and `to-sri` against b3's parser and `b3 hash convert`. SRI and
 * base64 digests may lack padding, have extra padding (or anything after the first `=`), hold
 * newlines or non-zero trailing bits; a prefixed `algo:` base64 digest must still have the padded
 * length. What is accepted prints in the canonical form.
 */
import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { Result } from "effect"
import * as Hash from "../../src/core/hash.ts"
import { runB3 } from "../support/b3.ts"
import { nixEnv } from "../support/nix.ts"

const hello = Hash.hashBytes("sha256", "hello")
const b64 = Hash.encode(hello, "base64") // 44 characters, one '='
const sha1 = Hash.hashBytes("sha1", "x")
const sha1b64 = Hash.encode(sha1, "base64") // 28 characters, one '='
const md5 = Hash.hashBytes("md5", "")
const md5b64 = Hash.encode(md5, "base64") // 24 characters, two '='
const sha512 = Hash.hashBytes("sha512", "x")
const sha512b64 = Hash.encode(sha512, "base64") // 88 characters, two '='
const flipLastBits = (s: string) => s.slice(0, -2) + String.fromCharCode(s.charCodeAt(s.length - 2) + 1) + "="

/** [input, --type or undefined]: Nix decides whether each is valid. */
const cases: ReadonlyArray<readonly [string, Hash.HashAlgorithm | undefined]> = [
  [`sha256-${b64}`, undefined],
  [`sha256-${b64.slice(0, -1)}`, undefined],             // no padding
  [`sha256-${b64}=`, undefined],                          // extra padding
  [`sha256-${b64}==`, undefined],
  [`sha256-${b64}garbage`, undefined],                    // ignored after '='
  [`sha256-${flipLastBits(b64)}`, undefined],             // non-zero trailing bits
  [`sha256-${b64.slice(0, 20)}\n${b64.slice(20)}`, undefined], // a newline inside
  [`sha256-${b64.slice(0, -2)}`, undefined],              // one character short
  [`sha256-${b64.slice(0, -1)}A`, undefined],             // 33 bytes
  [`sha256-`, undefined],
  [`sha256-=`, undefined],
  [`sha256-${b64.slice(0, 10)}!${b64.slice(11)}`, undefined],
  [`SHA256-${b64}`, undefined],
  [`sha1-${sha1b64.slice(0, -1)}`, undefined],
  [`md5-${md5b64.slice(0, -2)}`, undefined],
  [`md5-${md5b64.slice(0, -1)}`, undefined],
  [`sha512-${sha512b64.slice(0, -2)}`, undefined],
  [`sha512-${flipLastBits(sha512b64.slice(0, -1))}`, undefined],
  [`sha256:${b64}`, undefined],
  [`sha256:${b64.slice(0, -1)}`, undefined],              // prefixed base64 needs 44 characters
  [`sha256:${flipLastBits(b64)}`, undefined],
  [`sha256:${b64.slice(0, -2)}==`, undefined],
  [`sha256:${Hash.encode(hello, "base32")}`, undefined],
  [`sha256:${Hash.encode(hello, "base16").toUpperCase()}`, undefined],
  [`sha256:${Hash.encode(hello, "base16").slice(0, -1)}g`, undefined],
  [`sha1:${Hash.encode(sha1, "base32")}`, undefined],
  [Hash.encode(hello, "base32"), "sha256"],
  [b64, "sha256"],
  [b64.slice(0, -1), "sha256"],                           // bare base64 needs 44 characters too
  [`sha256-${b64}`, "sha256"],
  [`sha256-${b64}`, "sha1"],
  [`sha256:${Hash.encode(hello, "base32")}`, "sha512"],
  [Hash.encode(hello, "base16"), undefined],
  [`sha256:${"z".repeat(52)}`, undefined],                // bits beyond the length
  [`sha3:${b64}`, undefined]
]

const nixHash = (to: "to-base16" | "to-sri", input: string, type: string | undefined) => {
  const r = spawnSync("nix", ["hash", to, ...(type ? ["--type", type] : []), input], { env: nixEnv })
  return r.status === 0 ? { ok: true as const, out: r.stdout.toString().trim() } : { ok: false as const, err: r.stderr.toString() }
}

describe("hash strings: b3 against nix hash to-base16 / to-sri", () => {
  it.each(cases)("%j (type %s)", (input, type) => {
    const theirs = nixHash("to-base16", input, type)
    const ours = Hash.parse(input, type)
    expect(Result.isSuccess(ours), theirs.ok ? "Nix accepts it" : `Nix rejects it: ${theirs.err}`).toBe(theirs.ok)
    const cli = runB3(["hash", "convert", "--to", "base16", ...(type ? ["--type", type] : []), input])
    if (!theirs.ok || Result.isFailure(ours)) {
      expect(cli.status).toBe(2)
      expect(cli.stderr).toMatch(/^b3: invalid hash/)
      return
    }
    expect(Hash.encode(ours.success, "base16")).toBe(theirs.out)
    expect(cli.stdout).toBe(`${ours.success.algorithm}:${theirs.out}\n`)
    const sri = nixHash("to-sri", input, type)
    expect(sri.ok && sri.out).toBe(Hash.encode(ours.success, "sri"))
  })
})
