/**
 * The main job README.md opens with (scripts/demo.sh) runs end to end: add sources, build a graph in
 * the sandbox, push it signed to a cache, serve the cache, pull it back over HTTP and verify.
 */
import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const demo = fileURLToPath(new URL("../scripts/demo.sh", import.meta.url))

describe("scripts/demo.sh", () => {
  it("builds, pushes, serves, pulls back and verifies", () => {
    const result = spawnSync("bash", [demo], { encoding: "utf8", env: { ...process.env, B3_QUIET: "1" } })
    expect(result.stderr + result.stdout).not.toMatch(/MISMATCH/)
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(/built by b3 in Nix's sandbox: 9 words from \/nix\/store\/[0-9a-z]{32}-words/)
    expect(result.stdout.match(/^identical {2}sha256-/gm)).toHaveLength(3)
    expect(result.stdout).toContain("checked 3 paths, 0 problem(s)")
  }, 300_000)
})
