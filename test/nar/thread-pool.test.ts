/**
 * The pool mechanism the dump and restore worker pools share (src/nar/fs/thread-pool.ts): replies
 * matched to requests, the least busy worker picked, a dead worker's requests answered with the
 * pool's failure and the worker never picked again.
 */
import { describe, expect, it } from "vitest"
import { ThreadPool } from "../../src/nar/fs/thread-pool.ts"

type Reply = { readonly id: number; readonly value: number | string }

// doubles `n`; on `die` the worker exits without answering
const source = `
const { parentPort } = process.getBuiltinModule("node:worker_threads")
parentPort.on("message", ({ id, n, die }) => {
  if (die) process.exit(3)
  parentPort.postMessage({ id, value: n * 2 })
})
`
const make = (size: number) => new ThreadPool<Reply>({ size, source, failed: (reason) => ({ id: -1, value: `failed: ${reason}` }) })

describe("ThreadPool", () => {
  it("starts lazily and once, and answers each request with its own reply", async () => {
    const pool = make(2)
    expect(pool.started).toBe(false)
    pool.start()
    pool.start()
    expect(pool.started).toBe(true)
    const replies = await Promise.all([1, 2, 3, 4, 5].map((n) => pool.send(pool.pick()!, { n })))
    expect(replies.map((r) => r.value)).toEqual([2, 4, 6, 8, 10])
  })

  it("spreads requests over the least busy workers, and respects a per-worker limit", async () => {
    const pool = make(2)
    pool.start()
    await pool.whenReady()
    const a = pool.pick(1, true)!
    const first = pool.send(a, { n: 1 })
    const b = pool.pick(1, true)!
    expect(b).not.toBe(a)
    const second = pool.send(b, { n: 2 })
    expect(pool.pick(1, true)).toBeUndefined()
    await Promise.all([first, second])
    expect(pool.pick(1, true)).toBeDefined()
  })

  it("a worker that dies answers its outstanding request with the failure, and is not picked again", async () => {
    const pool = make(1)
    pool.start()
    await pool.whenReady()
    const slot = pool.pick()!
    const reply = await pool.send(slot, { die: true })
    expect(reply.value).toBe("failed: exit code 3")
    expect(pool.pick()).toBeUndefined()
  })
})
