/**
 * Capabilities are in the types: a program that needs StoreWrite does not type-check against a
 * read-only store's layer (tsc runs these files as part of `npm test`), and the layers opened from
 * URIs check at run time what their types cannot know.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startPutServer } from "../support/put-server.ts"
import { registryLayer } from "../../src/compose/registry.ts"
import { fileCacheLayer, httpCacheLayer } from "../../src/layers/binary-cache/openers.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { buildingStoreLayer, writableStoreLayer } from "../../src/services/registry.ts"
import { StoreRead } from "../../src/services/store-read.ts"
import { StoreWrite } from "../../src/services/store-write.ts"

const addsText = Effect.gen(function*() {
  const info = yield* (yield* StoreWrite).addText("hello.txt", "hello\n")
  return yield* (yield* StoreRead).isValidPath(info.path)
})

describe("capabilities in the types", () => {
  it("a program that writes runs on writable layers and does not compile against a read-only one", () => {
    const onMemory: Effect.Effect<boolean, unknown> = addsText.pipe(Effect.provide(MemoryStore.layer()))
    const onFileCache: Effect.Effect<boolean, unknown> = addsText.pipe(Effect.provide(fileCacheLayer("/tmp/never-opened")))
    // @ts-expect-error a read-only HTTP cache provides StoreRead only: StoreWrite is still required
    const onHttpCache: Effect.Effect<boolean, unknown> = addsText.pipe(Effect.provide(httpCacheLayer("http://127.0.0.1:1")))
    expect([onMemory, onFileCache, onHttpCache].length).toBe(3)
  })

  it.effect("a store opened from a URI that cannot write or build fails with Unsupported, naming the store", () => Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "b3-capabilities-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const server = yield* Effect.acquireRelease(Effect.promise(() => startPutServer(dir)), (s) => Effect.promise(() => s.close()))
    const readOnly = yield* Effect.flip(Layer.build(writableStoreLayer(`${server.url}?read-only=1`).pipe(Layer.provide(registryLayer))))
    expect(readOnly._tag).toBe("Unsupported")
    expect(readOnly.message).toMatch(/http:\/\/127\.0\.0\.1:\d+.* does not support writing/)
    const cannotBuild = yield* Effect.flip(Layer.build(buildingStoreLayer("memory://").pipe(Layer.provide(registryLayer))))
    expect(cannotBuild._tag).toBe("Unsupported")
    expect(cannotBuild.message).toMatch(/does not support building/)
    expect(yield* addsText.pipe(Effect.provide(writableStoreLayer("memory://").pipe(Layer.provide(registryLayer))))).toBe(true)
  }).pipe(Effect.scoped))
})
