/**
 * Hostile or broken input from caches and builders: a cache whose paths refer to each other in a
 * cycle fails the copy at once (it used to hang forever); untrusted text in error messages is cut
 * short and its control characters escaped; a build output the NAR format cannot hold is a failed
 * build (exit 5), not an internal error.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { addBusybox } from "../support/busybox.ts"
import { b3, runB3 } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

let scratch: string
beforeAll(() => { scratch = makeScratch("b3-cli-hostile-") })
afterAll(() => removeScratch(scratch))

/** A file cache with two text paths, and a way to rewrite one's narinfo. */
const twoPathCache = (name: string) => {
  const root = join(scratch, `${name}-root`)
  const cache = join(scratch, `${name}-cache`)
  writeFileSync(join(scratch, `${name}-a`), "a\n")
  writeFileSync(join(scratch, `${name}-b`), "b\n")
  const [a, b] = [b3(["store", "add", "--store", root, join(scratch, `${name}-a`)]), b3(["store", "add", "--store", root, join(scratch, `${name}-b`)])]
  b3(["copy", "--from", root, "--to", `file://${cache}?compression=none`, "--no-check-sigs", a!, b!])
  const narinfo = (path: string) => join(cache, `${path.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`)
  const edit = (path: string, f: (text: string) => string) => writeFileSync(narinfo(path), f(readFileSync(narinfo(path), "utf8")))
  return { cache, a: a!, b: b!, edit }
}

const base = (path: string) => path.slice("/nix/store/".length)

describe("hostile caches and builders", () => {
  it("a reference cycle between two paths fails the copy with Nix's message instead of hanging", () => {
    const { cache, a, b, edit } = twoPathCache("cycle")
    edit(a, (t) => t.replace(/^References:.*$/m, `References: ${base(b)}`))
    edit(b, (t) => t.replace(/^References:.*$/m, `References: ${base(a)}`))
    const result = runB3(["copy", "--from", `file://${cache}`, "--to", join(scratch, "cycle-target"), "--closure", "--no-check-sigs", a])
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch(/^b3: cycle detected in the references of '\/nix\/store\/.*' from '\/nix\/store\/.*'\n$/)
    expect(readdirSync(join(scratch, "cycle-target", "nix/store")).filter((n) => !n.startsWith("."))).toEqual([])
  })

  it("an error quoting a huge, escape-laden narinfo field prints one short line without control characters", () => {
    const { cache, a, edit } = twoPathCache("noisy")
    edit(a, (t) => t.replace(/^References:.*$/m, `References: \u001b[31m\u0007${"x".repeat(10 << 20)}`))
    const result = runB3(["path-info", "--store", `file://${cache}`, a])
    expect(result.status).not.toBe(0)
    expect(result.stderr.length).toBeLessThan(1200)
    expect(result.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/)
    expect(result.stderr).toContain("\\x1b[31m\\x07")
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
  })

  it("a FIFO in a build output is a failed build (exit 5) that names the output", () => {
    const root = join(scratch, "fifo-root")
    const bb = addBusybox(root)
    const module = join(scratch, "fifo.ts")
    writeFileSync(module, `
import { Result } from "effect"
import { derivation, storePath, str } from "b3/derivation"
const bb = storePath(${JSON.stringify(bb)})
export default Result.getOrThrow(derivation({ name: "fifo", system: "x86_64-linux", builder: str\`\${bb}/bin/sh\`,
  args: ["-c", str\`\${bb}/bin/busybox mkdir $out && \${bb}/bin/busybox mkfifo $out/pipe\`] }))
`)
    const result = runB3(["build", "--store", root, module])
    expect(result.status).toBe(5)
    expect(result.stderr).toMatch(/^b3: build of '\/nix\/store\/[^']*-fifo\.drv' failed: output '\/nix\/store\/[^']*-fifo': .*fifo/)
  })

  it("a .drv, narinfo or key that never ends (/dev/zero) or is huge is refused with its size limit instead of filling memory", () => {
    const key = b3(["key", "generate", "--name", "k", "--secret", join(scratch, "zero.sec"), "--public", join(scratch, "zero.pub"), "--json"])
    const publicKey = (JSON.parse(key) as { publicKey: string }).publicKey
    const huge = join(scratch, "huge.drv")
    writeFileSync(huge, "")
    truncateSync(huge, 65 << 20)
    for (const args of [["drv", "show", "/dev/zero"], ["narinfo", "verify", "--trusted-key", publicKey, "/dev/zero"], ["key", "public", "/dev/zero"], ["build", "--store", join(scratch, "zero-root"), huge]]) {
      const result = runB3(args)
      expect(result.status, args.join(" ")).toBe(2)
      expect(result.stderr).toMatch(/^b3: '[^']*' is too large for (a derivation|a narinfo|a secret key) \(more than (64|16) MiB\)\n$/)
    }
  })
})
