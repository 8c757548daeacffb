/**
 * The programs in examples/ run as their header comments say, and do what they claim: checked with
 * b3 and, where a store is involved, with real Nix reading what they wrote.
 * (examples/demo-graph.ts is run by the README's demo, test/demo.test.ts.)
 */
import { afterAll, describe, expect, it } from "vitest"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { b3, runB3 } from "./support/b3.ts"
import { makeScratch, nix, removeScratch } from "./support/nix.ts"
// The in-memory store example is itself a test file: its tests run as part of this one.
import "../examples/memory-store.test.ts"

const example = (name: string) => fileURLToPath(new URL(`../examples/${name}`, import.meta.url))
const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

interface CopyResult { readonly copied: ReadonlyArray<string>; readonly skipped: ReadonlyArray<string> }
const narHashOf = (store: string, path: string) => (JSON.parse(b3(["path-info", "--json", "--store", store, path])) as Array<{ narHash: string }>)[0]!.narHash

describe("examples/", () => {
  const store = join(scratch, "store")
  const cache = join(scratch, "cache")
  const source = join(scratch, "src")
  let summary = ""

  it("build-source.ts adds a source tree and builds a derivation from it in the sandbox", () => {
    mkdirSync(join(source, "sub"), { recursive: true })
    writeFileSync(join(source, "one.txt"), "a\nb\n")
    writeFileSync(join(source, "sub", "two.txt"), "c\n")
    const run = runB3(["run", "--quiet", example("build-source.ts"), "--store", store, "--", source])
    expect(run.stderr).toBe("")
    expect(run.status).toBe(0)
    summary = run.stdout.trim()
    expect(summary).toMatch(/^\/nix\/store\/[0-9a-z]{32}-src-summary$/)
    const src = b3(["store", "add", "--store", store, source]) // already there: the same path again
    expect(readFileSync(join(store, summary), "utf8")).toBe(`lines per file of ${src}\n./one.txt 2\n./sub/two.txt 1\n`)
    // Nix reads the store b3 built into: same path, same NAR hash, the source as a reference.
    const [info] = JSON.parse(nix("nix", ["path-info", "--json", "--store", store, summary])) as Array<{ narHash: string; references: Array<string> }>
    expect(info!.narHash).toBe(narHashOf(store, summary))
    expect(info!.references).toEqual([src])
  })

  it("push-to-cache.ts pushes a closure to a file cache, signed by the cache's key", () => {
    b3(["key", "generate", "--name", "examples-1", "--secret", join(scratch, "key.sec"), "--public", join(scratch, "key.pub")])
    const uri = `file://${cache}?secret-key=${join(scratch, "key.sec")}`
    const first = JSON.parse(b3(["run", "--json", example("push-to-cache.ts"), "--store", store, "--cache", uri, "--", summary])) as CopyResult
    expect(first.copied).toHaveLength(2)
    expect(first.copied).toContain(summary)
    const again = JSON.parse(b3(["run", "--json", example("push-to-cache.ts"), "--store", store, "--cache", uri, "--", summary])) as CopyResult
    expect(again).toEqual({ copied: [], skipped: [...first.copied].sort() })
    // Nix checks the cache: every NAR matches its narinfo and carries a signature by the trusted key.
    const publicKey = readFileSync(join(scratch, "key.pub"), "utf8").trim()
    nix("nix", ["store", "verify", "--store", `file://${cache}`, "--trusted-public-keys", publicKey, "--recursive", summary])
  })

  it("mirror-cache.ts mirrors everything in a file cache into a fresh store, checking signatures", () => {
    const mirror = join(scratch, "mirror")
    const publicKey = readFileSync(join(scratch, "key.pub"), "utf8").trim()
    const env = { ...process.env, B3_TRUSTED_PUBLIC_KEYS: publicKey }
    const run = runB3(["run", "--json", "--quiet", example("mirror-cache.ts"), "--cache", `file://${cache}`, "--store", mirror], { env })
    expect(run.status).toBe(0)
    expect((JSON.parse(run.stdout) as CopyResult).copied).toHaveLength(2)
    expect(narHashOf(mirror, summary)).toBe(narHashOf(store, summary))
    expect(b3(["store", "verify", "--store", mirror])).toBe("checked 2 paths, 0 problem(s)")

    // Without the key, nothing is taken: exit 4 (signature), one line.
    const untrusted = runB3(["run", "--quiet", example("mirror-cache.ts"), "--cache", `file://${cache}`, "--store", join(scratch, "mirror-2")],
      { env: { ...process.env, B3_TRUSTED_PUBLIC_KEYS: "" } })
    expect(untrusted.status).toBe(4)
    expect(untrusted.stderr).toMatch(/^b3: signature check failed for '\/nix\/store\/[0-9a-z]{32}-src(-summary)?': .*\n$/)
  })

  it("the README's pipeline example runs as its first line says", () => {
    const readme = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8")
    const code = /\n```ts\n(\/\/ release\.ts — b3 run [\s\S]*?)```\n/.exec(readme)?.[1]
    expect(code).toBeDefined()
    const release = join(scratch, "release.ts")
    writeFileSync(release, code!)
    const uri = `file://${join(scratch, "release-cache")}?secret-key=${join(scratch, "key.sec")}`
    const run = runB3(["run", "--json", release, "--store", join(scratch, "release-store"), "--cache", uri, "--", source])
    expect(run.status).toBe(0)
    expect(run.stderr).toMatch(/^added \/nix\/store\/[0-9a-z]{32}-src\n$/)
    expect(JSON.parse(run.stdout)).toEqual({ pushed: [run.stderr.slice("added ".length).trim()] })
    const publicKey = readFileSync(join(scratch, "key.pub"), "utf8").trim()
    nix("nix", ["store", "verify", "--store", `file://${join(scratch, "release-cache")}`, "--trusted-public-keys", publicKey, "--all"])
  })

  it("the README's build example builds as its first lines say (busybox added with store add-tool)", () => {
    const readme = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8")
    const code = /\n```ts\n(\/\/ hello\.ts — b3 build [\s\S]*?)```\n/.exec(readme)?.[1]
    expect(code).toBeDefined()
    const root = join(scratch, "hello-root")
    const words = (line: string) => line.replaceAll("'local?root=/tmp/r'", `local?root=${root}`).split(" ").filter((w) => w !== "")
    const [buildLine, addLine] = code!.split("\n") as [string, string]
    const addArgs = words(addLine.replace(/^\/\/ first: b3 /, ""))
    expect(addArgs.slice(0, 2)).toEqual(["store", "add-tool"])
    const busybox = b3(addArgs)
    // the README's path is Debian 12's busybox-static's; with another busybox, the module gets the one add-tool printed
    const readmePath = /storePath\("([^"]+)"\)/.exec(code!)![1]!
    const version = spawnSync("dpkg-query", ["-W", "-f", "${Version}", "busybox-static"], { encoding: "utf8" }).stdout
    if (version === "1:1.35.0-4+deb12u1+b1") expect(busybox).toBe(readmePath)
    const module = join(scratch, "hello.ts")
    writeFileSync(module, code!.replace(readmePath, busybox))
    const buildArgs = words(buildLine.replace(/^\/\/ hello\.ts — b3 /, "")).map((w) => w === "hello.ts" ? module : w)
    const out = b3(buildArgs)
    expect(out).toMatch(/^\/nix\/store\/[0-9a-z]{32}-hello$/)
    expect(readFileSync(join(root, out), "utf8")).toBe("hello\n")
  })

  it("memory-store.ts runs on a real store too, with its arguments", () => {
    const paths = b3(["run", example("memory-store.ts"), "--store", join(scratch, "greetings"), "--", "alice", "bob"]).split("\n")
    expect(paths.map((p) => p.replace(/^\/nix\/store\/[0-9a-z]{32}-/, "")).sort()).toEqual(["greetings", "hello-alice", "hello-bob"])
  })
})
