/** `b3 build` and `b3 log` on the command line: help, bad targets, stores that cannot build, missing logs, --post-build-hook. */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { runB3 } from "../support/b3.ts"
import { addBusybox } from "../support/busybox.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

let scratch: string
beforeAll(() => { scratch = makeScratch("b3-cli-build-") })
afterAll(() => removeScratch(scratch))

const oneLine = (stderr: string) => {
  expect(stderr.trim().split("\n")).toHaveLength(1)
  expect(stderr).toMatch(/^b3: /)
  expect(stderr).not.toMatch(/\n\s+at /)
}

describe("b3 build / b3 log", () => {
  it("documents its flags", () => {
    const help = runB3(["build", "--help"])
    expect(help.status).toBe(0)
    for (const flag of ["--store", "--substituters", "--max-jobs", "--keep-going", "--json", "--print-build-logs", "--timeout", "--max-silent-time", "--post-build-hook"]) {
      expect(help.stdout).toContain(flag)
    }
    expect(runB3(["log", "--help"]).stdout).toContain("build log")
  })

  it("refuses a store that cannot build, with exit code 2", () => {
    const result = runB3(["build", "--store", `file://${scratch}/cache`, "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x.drv"])
    expect(result.status).toBe(2)
    oneLine(result.stderr)
    expect(result.stderr).toContain("does not support building")
  })

  it("rejects targets that are not derivations", () => {
    const store = `local?root=${scratch}/root`
    const missing = runB3(["build", "--store", store, join(scratch, "missing.ts")])
    expect(missing.status).toBe(3)
    oneLine(missing.stderr)
    expect(missing.stderr).toContain("does not exist")
    writeFileSync(join(scratch, "empty.ts"), "export const x = 1\n")
    const empty = runB3(["build", "--store", store, join(scratch, "empty.ts")])
    expect(empty.status).toBe(2)
    expect(empty.stderr).toContain("exports no derivations")
    writeFileSync(join(scratch, "bad.drv"), "Derive([(\"out\"")
    const bad = runB3(["build", "--store", store, join(scratch, "bad.drv")])
    expect(bad.status).toBe(2)
    oneLine(bad.stderr)
    const notValid = runB3(["build", "--store", store, "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x.drv"])
    expect(notValid.status).toBe(2)
    expect(notValid.stderr).toContain("not a valid derivation")
  })

  it("says when there is no log (exit 3)", () => {
    const result = runB3(["log", "--store", `local?root=${scratch}/root`, "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x.drv"])
    expect(result.status).toBe(3)
    oneLine(result.stderr)
  })

  it("--post-build-hook runs a program after each build with DRV_PATH and OUT_PATHS (and the environment b3 was given), shows its output, and its failure fails the build (exit 5)", () => {
    const root = join(scratch, "hooked")
    const bb = addBusybox(root)
    const store = `local?root=${root}`
    const module = (salt: string) => {
      const file = join(scratch, `hooked-${salt}.ts`)
      writeFileSync(file, `
import { Result } from "effect"
import { derivation, storePath, str } from ${JSON.stringify(join(process.cwd(), "src/core/derivation/builder-api.ts"))}
const bb = storePath(${JSON.stringify(bb)})
const dep = Result.getOrThrow(derivation({ name: "dep-${salt}", system: "x86_64-linux", builder: str\`\${bb}/bin/sh\`, args: ["-c", "echo dep > $out"] }))
export default Result.getOrThrow(derivation({ name: "top-${salt}", system: "x86_64-linux", builder: str\`\${bb}/bin/sh\`,
  args: ["-c", str\`echo \${dep.outputs.out} > $out\`] }))
`)
      return file
    }
    const hook = (name: string, status: number) => {
      const path = join(scratch, name)
      writeFileSync(path, `#!/bin/sh\necho "$DRV_PATH|$OUT_PATHS" >> ${path}.record\necho "\${MALLOC_ARENA_MAX:-unset}" > ${path}.malloc\necho "pushed $OUT_PATHS"\nexit ${status}\n`, { mode: 0o755 })
      return path
    }
    const records = (path: string) => existsSync(`${path}.record`) ? readFileSync(`${path}.record`, "utf8").trim().split("\n") : []

    const good = hook("good.sh", 0)
    const built = runB3(["--json", "build", "--store", store, "--post-build-hook", good, module("a")])
    expect(built.status, built.stderr).toBe(0)
    const [result] = JSON.parse(built.stdout) as Array<{ drvPath: string; outputs: { out: string } }>
    const lines = records(good)
    expect(lines).toHaveLength(2) // the dependency's build, then the target's
    expect(lines[1]).toBe(`${result!.drvPath}|${result!.outputs.out}`)
    expect(lines[0]).toMatch(/^\/nix\/store\/[a-z0-9]{32}-dep-a\.drv\|\/nix\/store\/[a-z0-9]{32}-dep-a$/)
    expect(built.stderr).toContain(`post-build-hook: pushed ${result!.outputs.out}`)
    // bin/b3's one malloc arena is b3's own: the hook runs with the environment b3 was given
    expect(readFileSync(`${good}.malloc`, "utf8").trim()).toBe(process.env.MALLOC_ARENA_MAX ?? "unset")
    // valid already: no hook
    expect(runB3(["build", "--store", store, "--post-build-hook", good, module("a")]).status).toBe(0)
    expect(records(good)).toHaveLength(2)

    const bad = hook("bad.sh", 4)
    const failed = runB3(["build", "--store", store, "--post-build-hook", bad, module("b")])
    expect(failed.status).toBe(5)
    expect(failed.stderr).toContain(`program '${bad}' failed with exit code 4`)
    expect(records(bad)).toHaveLength(1) // the dependency's hook failed: the target was not built
    const depOut = records(bad)[0]!.split("|")[1]!
    expect(existsSync(join(root, depOut))).toBe(true)
  }, 120_000)
})
