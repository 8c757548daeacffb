import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as LocalStore from "../../src/layers/local/index.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { removeTree } from "../../src/layers/local/fs-ops.ts"
import { storeConformance } from "./conformance.ts"

const scratchRoot = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-local-"))),
  (dir) => Effect.sync(() => { removeTree(dir); rmSync(dir, { recursive: true, force: true }) })
)

storeConformance("local (chroot store)", () => Effect.flatMap(scratchRoot, (root) => LocalStore.make({ root })), { checksReferences: true })
storeConformance("local (non-default store dir)", () => Effect.flatMap(scratchRoot, (root) => LocalStore.make({ root, storeDir: "/b3/store" })), { checksReferences: true })

describe("local store group commit", () => {
  it.effect("concurrent adds, some of the same path, each end valid once, with nothing left over", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratchRoot
    const store = yield* LocalStore.make({ root })
    const mem = MemoryStore.make()
    const samples = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), (i) =>
      Effect.flatMap(mem.write.addText(`t${i}`, `text ${i}\n`.repeat(i + 1)), (info) =>
        Effect.map(Stream.runCollect(mem.read.narFromPath(info.path)), (chunks) => ({ info, nar: Buffer.concat([...chunks]) }))))
    // 36 adds at once: every sample three times
    yield* Effect.forEach([...samples, ...samples, ...samples], ({ info, nar }) =>
      store.write.addToStore(info, Stream.make(new Uint8Array(nar))), { concurrency: 36, discard: true })
    for (const { info, nar } of samples) {
      const back = Buffer.concat([...yield* Stream.runCollect(store.read.narFromPath(info.path))])
      expect(back.equals(nar)).toBe(true)
    }
    const report = yield* store.maintenance.verify()
    expect(report.problems).toEqual([])
    expect(readdirSync(join(root, "nix/store")).filter((n) => n.startsWith("."))).toEqual([])
  })))
})
