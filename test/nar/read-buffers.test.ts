/** The read buffers restores from a descriptor share: how they are lent, and restores that share them. */
import { Effect, Result } from "effect"
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Tree from "../../src/nar/tree.ts"
import { ReadBuffers } from "../../src/nar/fs/read-buffers.ts"
import { aheadReadBuffers, firstReadBuffers, restoreNarFromFd } from "../../src/nar/fs/restore.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const scratch = makeScratch("b3-read-buffers-")
afterAll(() => removeScratch(scratch))

describe("ReadBuffers", () => {
  it("lends a buffer always when asked so, others only while fewer than `spare` are out, and keeps at most `spare` free", () => {
    const pool = new ReadBuffers(1000, 2)
    const a = pool.take(true)!
    const b = pool.take(false)!
    expect(pool.take(false)).toBeUndefined() // two out: no spare
    const c = pool.take(true)! // never refused when asked always
    expect([a.length, b.length, c.length]).toEqual([1000, 1000, 1000])
    expect(pool.lent).toBe(3)
    pool.give([a, b, c])
    expect([pool.lent, pool.free]).toEqual([0, 2])
    // given back buffers are lent again rather than new ones made
    const again = [pool.take(true)!, pool.take(false)!]
    expect(again.every((x) => x === a || x === b || x === c)).toBe(true)
    expect(pool.free).toBe(0)
  })
})

/** Sizes of the two pools' buffers, as restore.ts makes them. */
const firstSize = 256 << 10
const aheadSize = 1 << 20

describe("restores from descriptors sharing the pools", () => {
  /** A NAR file holding one file of `size` varied bytes (seeded), and those bytes. */
  const narFile = (name: string, size: number, seed: number) => {
    const bytes = new Uint8Array(size)
    for (let i = 0; i < size; i++) bytes[i] = (i * seed + (i >>> 9)) & 0xff
    const file = join(scratch, `${name}.nar`)
    writeFileSync(file, Result.getOrThrow(Tree.toNar(Tree.directory({ data: Tree.regular(bytes), small: Tree.regular(name) }))))
    return { file, bytes }
  }
  const restoreFile = (file: string, target: string) =>
    Effect.acquireUseRelease(Effect.sync(() => openSync(file, "r")), (fd) => restoreNarFromFd(fd, target), (fd) => Effect.sync(() => closeSync(fd)))

  it("fourteen at once, of sizes around and well above one buffer, come out whole, and every buffer comes back", async () => {
    const sizes = [1, 1000, firstSize - 200, firstSize, firstSize + 1, aheadSize, aheadSize + 1, 3 * aheadSize + 7, 9 * aheadSize + 5, 20_000, 2 * firstSize, 5 * aheadSize, 17, 7 * aheadSize]
    const nars = sizes.map((size, i) => narFile(`n${i}`, size, 2 * i + 3))
    await Effect.runPromise(Effect.forEach(nars, ({ file }, i) => restoreFile(file, join(scratch, `out-${i}`)), { concurrency: "unbounded", discard: true }))
    nars.forEach(({ bytes }, i) => {
      expect(readFileSync(join(scratch, `out-${i}`, "data")).equals(Buffer.from(bytes))).toBe(true)
      expect(readFileSync(join(scratch, `out-${i}`, "small"), "utf8")).toBe(`n${i}`)
    })
    expect([firstReadBuffers.lent, aheadReadBuffers.lent]).toEqual([0, 0])
    expect(firstReadBuffers.free).toBeGreaterThan(0)
    expect(aheadReadBuffers.free).toBeGreaterThan(0)
  })

  it("a restore that fails (a truncated NAR) gives its buffers back too, and the next restore reads whole bytes from them", async () => {
    const { file } = narFile("whole", 3 * aheadSize + 11, 7)
    const cut = join(scratch, "cut.nar")
    writeFileSync(cut, readFileSync(file).subarray(0, 2 * aheadSize + 100))
    const failed = await Effect.runPromise(Effect.result(restoreFile(cut, join(scratch, "cut-out"))))
    expect(failed._tag).toBe("Failure")
    expect([firstReadBuffers.lent, aheadReadBuffers.lent]).toEqual([0, 0])
    const { file: next, bytes } = narFile("next", 2 * aheadSize + 3, 11)
    await Effect.runPromise(restoreFile(next, join(scratch, "next-out")))
    expect(readFileSync(join(scratch, "next-out", "data")).equals(Buffer.from(bytes))).toBe(true)
  })
})
