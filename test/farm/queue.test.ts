/**
 * The farm's scheduling transactions (src/farm/queue.ts) on an embedded SQLite database: jobs wait
 * for their inputs in SQL, finishing an input releases them, a failure fails what depends on it
 * transitively, and finished jobs whose workflow has not recorded them are found for reconciling.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { SqlClient } from "effect/sql"
import * as Db from "../../src/farm/db.ts"
import * as Queue from "../../src/farm/queue.ts"
import * as SqliteClient from "../../src/farm/sqlite-client.ts"

const withDb = <A, E>(f: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.gen(function*() {
  const dir = mkdtempSync(join(tmpdir(), "b3-farm-queue-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  return yield* Effect.andThen(Db.migrate, f).pipe(Effect.provide(SqliteClient.layer({ filename: join(dir, "farm.db") })))
}).pipe(Effect.scoped)

const job = (drv: string, deps: ReadonlyArray<string> = []) => ({
  drv, epoch: 0, system: "x86_64-linux", features: [], submission: "s", token: `token-${drv}`, execution: `exec-${drv}`, deps
})

const states = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ drv: string; state: string }>`SELECT drv, state FROM farm_jobs ORDER BY drv`
  return Object.fromEntries(rows.map((r) => [r.drv, r.state]))
})

const built = (drv: string) => Exit.succeed({ outputs: { out: `/nix/store/out-${drv}` }, status: "built" as const })
const failed = (drv: string) => Exit.fail(Queue.failedWith(drv, "build", "builder failed"))

describe("farm queue", () => {
  it.effect("a job waits for all its inputs, and is released by the transaction that finishes the last", () => withDb(Effect.gen(function*() {
    assert.deepStrictEqual(yield* Queue.enqueue(job("a")), { failedDep: undefined, queued: true })
    assert.deepStrictEqual(yield* Queue.enqueue(job("b")), { failedDep: undefined, queued: true })
    assert.deepStrictEqual(yield* Queue.enqueue(job("c", ["a", "b"])), { failedDep: undefined, queued: false })
    assert.deepStrictEqual(yield* states, { a: "queued", b: "queued", c: "blocked" })
    const first = yield* Queue.finish("a", 0, built("a"))
    assert.deepStrictEqual([first.decided, first.released], [true, []])
    const second = yield* Queue.finish("b", 0, built("b"))
    assert.deepStrictEqual(second.released, ["c"])
    assert.strictEqual((yield* states).c, "queued")
    // finishing again decides nothing and releases nothing
    const again = yield* Queue.finish("b", 0, built("b"), { recorded: true })
    assert.deepStrictEqual([again.decided, again.released], [false, []])
    // an input finished before the job is enqueued: queued at once
    assert.deepStrictEqual(yield* Queue.enqueue(job("d", ["a"])), { failedDep: undefined, queued: true })
  })))

  it.effect("a failure fails everything that waits for it, transitively, with the tokens to wake", () => withDb(Effect.gen(function*() {
    yield* Queue.enqueue(job("a"))
    yield* Queue.enqueue(job("b", ["a"]))
    yield* Queue.enqueue(job("c", ["b"]))
    yield* Queue.enqueue(job("x"))
    yield* Queue.enqueue(job("y", ["x", "b"]))
    const finished = yield* Queue.finish("a", 0, failed("a"))
    assert.deepStrictEqual(finished.cascaded.map((c) => c.token).sort(), ["token-b", "token-c", "token-y"])
    const b = finished.cascaded.find((c) => c.drv === "b")!
    assert.isTrue(Exit.isFailure(b.exit))
    assert.include(JSON.stringify(b.exit), "dependency 'a' failed")
    assert.deepStrictEqual(yield* states, { a: "queued", b: "failed", c: "failed", x: "queued", y: "failed" })
    // a job enqueued after its input failed is not queued at all
    assert.deepStrictEqual(yield* Queue.enqueue(job("z", ["c"])), { failedDep: "c", queued: false })
    const sql = yield* SqlClient.SqlClient
    const derivations = yield* sql<{ drv: string; state: string }>`SELECT drv, state FROM farm_derivations WHERE drv IN ('a', 'b', 'c', 'y') ORDER BY drv`
    assert.deepStrictEqual(derivations.map((d) => d.state), ["failed", "failed", "failed", "failed"])
  })))

  it.effect("finished jobs whose workflow has not recorded them are found, until it records", () => withDb(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Queue.enqueue(job("a"))
    yield* sql`UPDATE farm_jobs SET state = 'done', result = ${Queue.exitToJson(built("a"))}, finished_at = ${Db.now() - 60_000} WHERE drv = 'a'`
    yield* Queue.finish("a", 0, built("a"))
    const lost = yield* Queue.unrecorded(1000)
    assert.deepStrictEqual(lost.map((j) => [j.drv, j.token, j.execution]), [["a", "token-a", "exec-a"]])
    assert.isTrue(Exit.isSuccess(Queue.exitFromJson(lost[0]!.result)))
    yield* Queue.finish("a", 0, built("a"), { recorded: true })
    assert.deepStrictEqual(yield* Queue.unrecorded(1000), [])
  })))

  it.effect("derivations started but never enqueued are found for restarting", () => withDb(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO farm_derivations (drv, epoch, state, execution, submission, updated_at) VALUES ('p', 0, 'pending', 'exec-p', 's', ${Db.now() - 60_000})`
    yield* sql`INSERT INTO farm_derivations (drv, epoch, state, execution, submission, updated_at) VALUES ('q', 0, 'pending', 'exec-q', 's', ${Db.now() - 60_000})`
    yield* Queue.enqueue(job("q"))
    assert.deepStrictEqual((yield* Queue.unstarted(1000)).map((d) => d.drv), ["p"])
    yield* Queue.touch("p")
    assert.deepStrictEqual(yield* Queue.unstarted(1000), [])
  })))
})
