/**
 * The chunk store with its index in PostgreSQL (a server the test starts: initdb in a temp dir,
 * unix socket only): the store suite, and several writers sharing one store — two store objects
 * (as two machines would have) ingesting overlapping paths at once, then one deleting and
 * collecting garbage while the other keeps adding: nothing committed is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Scope, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { openPostgres } from "../../src/layers/chunked/db.ts"
import { openFileChunkStore } from "../../src/layers/chunked/opener.ts"
import { crashPath } from "../support/chunked-crash-worker.ts"
import { startPostgres, type TestPostgres } from "../support/postgres.ts"
import { storeConformance, uriStore } from "./store-suite.ts"

const scratch = mkdtempSync(join(tmpdir(), "b3-chunked-pg-"))
const scope = Effect.runSync(Scope.make())
let pg: TestPostgres

beforeAll(async () => { pg = await Effect.runPromise(Scope.provide(startPostgres, scope)) }, 60_000)
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  rmSync(scratch, { recursive: true, force: true })
})

let stores = 0
const fresh = () => Effect.gen(function*() {
  const dir = join(scratch, `store-${++stores}`)
  const index = yield* Effect.promise(() => pg.freshDatabase())
  return { dir, index }
})

storeConformance("chunked+file (PostgreSQL index)", () => uriStore(Effect.map(fresh(), ({ dir, index }) =>
  `chunked+file://${dir}?index=${encodeURIComponent(index)}&pack-size=0.25`)), { checksReferences: false, live: true })

const collect = (s: Stream.Stream<Uint8Array, unknown>) => Effect.map(Stream.runCollect(s), (c) => Buffer.concat([...c]))
const options = { chunking: { min: 1024, avg: 4096, max: 16384 }, packSize: 128 * 1024 }

// These run on the live clock: a transaction PostgreSQL aborts as a deadlock is retried after a
// short pause, which the test clock of it.effect would never end (the retrying ingest waited forever).
describe("several writers on one PostgreSQL index", () => {
  it.live("two transactions that deadlock: PostgreSQL aborts one, it is retried, both commit", () => Effect.scoped(Effect.gen(function*() {
    const db = yield* openPostgres("test", yield* Effect.promise(() => pg.freshDatabase()))
    yield* db.run("create table t (k integer primary key, v integer not null)")
    yield* db.run("insert into t (k, v) values (1, 0), (2, 0)")
    const locked = [yield* Deferred.make<void>(), yield* Deferred.make<void>()] as const
    const attempts = [0, 0]
    // each locks its first row, waits until the other has locked its own (first attempt only), then
    // wants the other's row: a deadlock every time, with no timing involved
    const tx = (me: 0 | 1) => db.transaction((sql) => Effect.gen(function*() {
      const first = attempts[me]++ === 0
      yield* sql.run("update t set v = v + 1 where k = ?", [me + 1])
      if (first) {
        yield* Deferred.succeed(locked[me], undefined)
        yield* Deferred.await(locked[1 - me]!)
      }
      yield* sql.run("update t set v = v + 10 where k = ?", [2 - me])
    }))
    yield* Effect.all([tx(0), tx(1)], { concurrency: 2 })
    expect(attempts[0]! + attempts[1]!).toBe(3)
    expect(yield* db.all<{ k: number; v: number }>("select k, v from t order by k")).toEqual([{ k: 1, v: 11 }, { k: 2, v: 11 }])
  })), 60_000)

  it.live("ingest at once, then GC while the other ingests: every committed path reads back", () => Effect.scoped(Effect.gen(function*() {
    const { dir, index } = yield* fresh()
    const a = yield* openFileChunkStore(dir, { index, ...options })
    const b = yield* openFileChunkStore(dir, { index, ...options })
    const add = (store: typeof a, name: string) => Effect.gen(function*() {
      const p = crashPath(name)
      yield* store.write!.addToStore(p.info, Stream.make(p.nar))
      return p
    })
    // both add the same paths and others, at the same time
    const names = Array.from({ length: 10 }, (_, i) => `w${i}`)
    const [fromA, fromB] = yield* Effect.all([
      Effect.forEach(names, (n) => add(a, n), { concurrency: 2 }),
      Effect.forEach([...names].reverse().map((n) => `${n}b`).concat(names.slice(0, 5)), (n) => add(b, n), { concurrency: 2 })
    ], { concurrency: 2 })
    for (const p of [...fromA, ...fromB]) {
      expect(Buffer.compare(yield* collect(a.read.narFromPath(p.path)), p.nar)).toBe(0)
      expect(Buffer.compare(yield* collect(b.read.narFromPath(p.path)), p.nar)).toBe(0)
    }
    // a deletes half and collects garbage while b adds more that share chunks with what was deleted
    const doomed = fromA.filter((_, i) => i % 2 === 0).map((p) => p.path)
    const [, more] = yield* Effect.all([
      Effect.andThen(a.maintenance!.deletePaths!(doomed), a.maintenance!.collectGarbage()),
      Effect.forEach(Array.from({ length: 8 }, (_, i) => `late${i}`), (n) => add(b, n), { concurrency: 2 })
    ], { concurrency: 2 })
    yield* b.maintenance!.collectGarbage()
    const live = [...fromA.filter((_, i) => i % 2 === 1), ...fromB.filter((p) => !doomed.some((d) => d.hashPart === p.path.hashPart)), ...more]
    for (const p of live) expect(Buffer.compare(yield* collect(a.read.narFromPath(p.path)), p.nar)).toBe(0)
    const report = yield* a.maintenance!.verify()
    expect(report.problems).toEqual([])
    expect(report.checked).toBe(new Set(live.map((p) => p.path.hashPart)).size)
  })), 120_000)
})
