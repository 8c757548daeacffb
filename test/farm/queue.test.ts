/**
 * The farm's scheduling transactions (src/farm/queue.ts) on an embedded SQLite database: jobs wait
 * for their inputs in SQL, finishing an input releases them, a failure fails what depends on it
 * transitively, finished jobs whose workflow has not recorded them are found for reconciling, and
 * runners claim only what they can build, fairly between submissions.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
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

  it.effect("a runner claims only jobs whose system and required features it offers", () => withDb(Effect.gen(function*() {
    yield* Queue.enqueue({ ...job("arm"), system: "aarch64-linux" })
    yield* Queue.enqueue({ ...job("gpu"), features: ["cuda", "kvm"] })
    yield* Queue.enqueue({ ...job("kvm"), features: ["kvm"] })
    const claimedBy = (runner: string, systems: Array<string>, features: Array<string>) =>
      Effect.map(Queue.claim(runner, new Set(systems), new Set(features), 10_000), Option.map((j) => j.drv))
    // a plain x86_64 runner: nothing here is for it
    assert.deepStrictEqual(yield* claimedBy("plain", ["x86_64-linux"], []), Option.none())
    // kvm but not cuda: only the kvm job
    assert.deepStrictEqual(yield* claimedBy("kvm-runner", ["x86_64-linux"], ["kvm"]), Option.some("kvm"))
    assert.deepStrictEqual(yield* claimedBy("kvm-runner", ["x86_64-linux"], ["kvm"]), Option.none())
    assert.deepStrictEqual(yield* claimedBy("gpu-runner", ["x86_64-linux"], ["cuda", "kvm", "big-parallel"]), Option.some("gpu"))
    assert.deepStrictEqual(yield* claimedBy("arm-runner", ["aarch64-linux"], []), Option.some("arm"))
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ drv: string; runner: string }>`SELECT drv, runner FROM farm_jobs ORDER BY drv`
    assert.deepStrictEqual(rows.map((r) => [r.drv, r.runner]), [["arm", "arm-runner"], ["gpu", "gpu-runner"], ["kvm", "kvm-runner"]])
  })))

  it.effect("the next job comes from the submission with the fewest builds running, then the oldest", () => withDb(Effect.gen(function*() {
    // a big submission queued first, a small one after it
    for (let i = 0; i < 6; i++) yield* Queue.enqueue({ ...job(`big-${i}`), submission: "big" })
    for (let i = 0; i < 2; i++) yield* Queue.enqueue({ ...job(`small-${i}`), submission: "small" })
    const next = Effect.map(Queue.claim("r", new Set(["x86_64-linux"]), new Set(), 10_000), (j) => Option.getOrThrow(j).drv)
    const order: Array<string> = []
    for (let i = 0; i < 6; i++) order.push(yield* next)
    // the oldest first; then the small submission, which has none running, takes turns with the big one
    assert.deepStrictEqual(order, ["big-0", "small-0", "big-1", "small-1", "big-2", "big-3"])
  })))
})
