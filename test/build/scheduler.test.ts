/**
 * The scheduler through `b3 build`: a generated 200-derivation graph declared with the TypeScript
 * derivation API (a module, as users write them) builds with --max-jobs 2 to the right values;
 * a second store takes every output from a binary cache instead of building (substitution with
 * signature checking); and a build killed mid-way leaves no process, mount, temp dir or lock.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { addBusybox } from "../support/busybox.ts"
import { b3, b3Bin, runB3 } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const builderApi = fileURLToPath(new URL("../../src/core/derivation/builder-api.ts", import.meta.url))
const nodes = 200
const modulus = 1000003

let scratch: string
let root: string
let bb: string
/** Modules live inside the repository so that they resolve `effect` from its node_modules. */
let moduleDir: string

/** Node i depends on i-1 and floor(i/2) and prints (i + their values) mod `modulus`. */
const graphModule = (bbPath: string) => `
import { Result } from "effect"
import { derivation, storePath, str } from ${JSON.stringify(builderApi)}
const bb = storePath(${JSON.stringify(bbPath)})
const nodes = []
for (let i = 0; i < ${nodes}; i++) {
  const deps = i === 0 ? [] : [nodes[i - 1], nodes[Math.floor(i / 2)]]
  const sum = deps.map((d) => str\`$(\${bb}/bin/busybox cat \${d})\`)
  nodes.push(Result.getOrThrow(derivation({
    name: "node-" + i, system: "x86_64-linux", builder: str\`\${bb}/bin/sh\`,
    args: ["-c", str\`echo $(( (\${String(i)} \${sum.length ? str\`+ \${sum[0]} + \${sum[1]}\` : ""}) % ${modulus} )) > $out\`]
  })))
}
export default nodes
`

const expectedValues = (): Array<number> => {
  const v: Array<number> = []
  for (let i = 0; i < nodes; i++) v.push(i === 0 ? 0 : (i + v[i - 1]! + v[Math.floor(i / 2)]!) % modulus)
  return v
}

beforeAll(() => {
  scratch = makeScratch("b3-scheduler-")
  root = join(scratch, "root")
  bb = addBusybox(root)
  moduleDir = fileURLToPath(new URL(`./.generated-${process.pid}`, import.meta.url))
  mkdirSync(moduleDir)
  writeFileSync(join(moduleDir, "graph.ts"), graphModule(bb))
}, 60_000)
afterAll(() => { removeScratch(scratch); removeScratch(moduleDir) })

interface Built { drvPath: string; outputs: Record<string, string>; status: string }

describe("b3 build scheduler", () => {
  it("builds a 200-derivation graph from a TypeScript module with --max-jobs 2", () => {
    const module = join(moduleDir, "graph.ts")
    {
      const built = JSON.parse(b3(["build", "--store", `local?root=${root}`, "--max-jobs", "2", "--json", module])) as Array<Built>
      expect(built).toHaveLength(nodes)
      expect(built.every((b) => b.status === "built")).toBe(true)
      const expected = expectedValues()
      built.forEach((b, i) => {
        const out = b.outputs.out!
        expect(out).toMatch(new RegExp(`-node-${i}$`))
        expect(readFileSync(join(root, out), "utf8")).toBe(`${expected[i]}\n`)
      })
      // Building again does nothing.
      const again = JSON.parse(b3(["build", "--store", `local?root=${root}`, "--json", module])) as Array<Built>
      expect(again.every((b) => b.status === "already-valid")).toBe(true)
    }
  }, 600_000)

  it("substitutes from a signed binary cache instead of building", () => {
    const module = join(moduleDir, "small-graph.ts")
    writeFileSync(module, graphModule(bb).replace(`for (let i = 0; i < ${nodes};`, "for (let i = 0; i < 5;"))
    {
      const store = `local?root=${root}`
      const built = JSON.parse(b3(["build", "--store", store, "--json", module])) as Array<Built>
      const outputs = built.flatMap((b) => Object.values(b.outputs))
      b3(["key", "generate", "--name", "test-cache-1", "--secret", join(scratch, "sk"), "--public", join(scratch, "pk")])
      const cache = `file://${join(scratch, "cache")}?secret-key=${join(scratch, "sk")}`
      b3(["copy", "--from", store, "--to", cache, "--closure", "--no-check-sigs", ...outputs])

      // Untrusted cache: the signatures do not verify, so nothing is taken from it and everything is built, as Nix does.
      addBusybox(join(scratch, "fresh-untrusted"))
      const untrusted = runB3(["build", "--json", "--store", `local?root=${join(scratch, "fresh-untrusted")}`,
        "--substituters", `file://${join(scratch, "cache")}`, "--trusted-public-keys", "", module])
      expect(untrusted.status).toBe(0)
      expect((JSON.parse(untrusted.stdout) as Array<Built>).map((b) => b.status)).toEqual(built.map(() => "built"))
      expect(untrusted.stderr).toMatch(/warning: the substitute for '.*' from 'file:\/\/.*' is not signed by any of the keys in 'trusted-public-keys'/)
      const fresh = `local?root=${join(scratch, "fresh")}`
      addBusybox(join(scratch, "fresh"))
      const pk = readFileSync(join(scratch, "pk"), "utf8").trim()
      const substituted = JSON.parse(b3(["build", "--store", fresh, "--json", "--substituters", `file://${join(scratch, "cache")}`,
        "--trusted-public-keys", pk, module])) as Array<Built>
      expect(substituted.map((b) => b.status)).toEqual(built.map(() => "substituted"))
      expect(substituted.flatMap((b) => Object.values(b.outputs))).toEqual(outputs)
    }
  }, 300_000)

  it("leaves no process, mount, temp dir, lock or store temp behind when killed mid-build", async () => {
    const module = join(moduleDir, "sleepy.ts")
    writeFileSync(module, `
import { Result } from "effect"
import { derivation, storePath, str } from ${JSON.stringify(builderApi)}
const bb = storePath(${JSON.stringify(bb)})
export default Result.getOrThrow(derivation({ name: "sleepy-${Date.now()}", system: "x86_64-linux", builder: str\`\${bb}/bin/sh\`,
  args: ["-c", str\`echo started; \${bb}/bin/busybox sleep 600; echo never > $out\`] }))
`)
    const before = new Set(readdirSync(tmpdir()))
    const child = spawn(b3Bin, ["build", "--store", `local?root=${root}`, "--print-build-logs", module], { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    await new Promise<void>((resolve, reject) => {
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString()
        if (stderr.includes("> started")) resolve()
      })
      child.on("exit", () => reject(new Error(`b3 build ended early: ${stderr}`)))
    })
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    // (only this b3's directories: other test files may be building at the same time)
    const leftovers = readdirSync(tmpdir()).filter((name) => !before.has(name) && (name.startsWith(`b3-build-${child.pid}-`) || name.startsWith("nix-build-sleepy")))
    expect(leftovers).toEqual([])
    const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    expect(mounts).not.toContain("b3-build-")
    const sleepers = readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
      try { return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("sleep\x00600") } catch { return false }
    })
    expect(sleepers).toEqual([])
    expect(readdirSync(join(root, "nix/store")).filter((n) => n.startsWith(".b3-tmp-"))).toEqual([])
    // The store still works: a second build of something else goes through (no stale lock).
    expect(runB3(["build", "--store", `local?root=${root}`, "--json", join(moduleDir, "graph.ts")]).status).toBe(0)
    expect(existsSync(join(root, "nix/var/nix/db/db.sqlite"))).toBe(true)
  }, 120_000)
})
