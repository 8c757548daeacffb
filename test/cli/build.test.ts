/** `b3 build` and `b3 log` on the command line: help, bad targets, stores that cannot build, missing logs. */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { runB3 } from "../support/b3.ts"
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
    for (const flag of ["--store", "--substituters", "--max-jobs", "--keep-going", "--json", "--print-build-logs", "--timeout", "--max-silent-time"]) {
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
})
