/**
 * The daemon session run while the startup snapshot is built (src/cli/snapshot-warmup.ts): it must
 * do the work it is there to compile (every path sent is added), and leave nothing behind.
 */
import { afterAll, describe, expect, it } from "vitest"
import { readdirSync } from "node:fs"
import { warmUpDaemon } from "../../src/cli/snapshot-warmup.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

describe("the snapshot's daemon warm-up", () => {
  it("adds every path it sends, through the daemon's own connection code, and removes its scratch directory", async () => {
    const tmp = process.env.TMPDIR
    process.env.TMPDIR = scratch // where os.tmpdir() puts its scratch directory
    try {
      expect(await warmUpDaemon()).toBe(300)
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = tmp
    }
    expect(readdirSync(scratch)).toEqual([])
  })

  it("can run more than once in a process (nothing it sets up is kept)", async () => {
    expect(await warmUpDaemon()).toBe(300)
  })
})
