/**
 * Crash safety of the chunk store: a worker process ingesting, deleting + collecting garbage, or
 * repacking is killed with SIGKILL at a random point, many times over, on the same store. After
 * every kill the store is read as a reader without the index would (the blobs alone) and with it:
 * every valid path reads back byte-identical to what it was made from, and `verify` finds nothing
 * wrong (paths share chunks, and similar chunks are stored as deltas against other paths'). At the end a GC finishes what the killed processes left, and the packs on disk are
 * exactly those the index knows.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import * as StorePath from "../../src/core/store-path.ts"
import { openFileChunkStore } from "../../src/layers/chunked/opener.ts"
import { crashPath, crashStoreOptions } from "../support/chunked-crash-worker.ts"
import { checkDeltaIndex } from "../support/chunked-index-check.ts"

const node = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url))
const worker = fileURLToPath(new URL("../support/chunked-crash-worker.ts", import.meta.url))

/** Runs the worker and kills it when it prints its `killAt`-th line (or lets it finish). */
const runAndKill = (dir: string, seed: number, mode: string, killAt: number) => new Promise<{ killed: boolean; lines: Array<string> }>((resolve) => {
  const child = spawn(node, [worker, dir, String(seed), mode], { stdio: ["ignore", "pipe", "inherit"] })
  const lines: Array<string> = []
  let killed = false
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line)
    if (lines.length === killAt && !killed) {
      killed = true
      child.kill("SIGKILL")
    }
  })
  child.on("exit", () => resolve({ killed, lines }))
})

const collect = (s: Stream.Stream<Uint8Array, unknown>) => Effect.map(Stream.runCollect(s), (c) => Buffer.concat([...c]))

/** Every valid path reads back as made, through the blobs alone and through a writer's store. */
const checkStore = (dir: string) => Effect.scoped(Effect.gen(function*() {
  const reader = yield* openFileChunkStore(dir, { readOnly: true })
  const hashParts = existsSync(join(dir, "paths")) ? readdirSync(join(dir, "paths")).filter((f) => f.endsWith(".b3p")).map((f) => f.slice(0, 32)) : []
  for (const hashPart of hashParts) {
    const path = yield* reader.read.queryPathFromHashPart(hashPart)
    expect(Option.isSome(path)).toBe(true)
    const expected = crashPath(Option.getOrThrow(path).name)
    expect(StorePath.baseName(expected.path)).toBe(StorePath.baseName(Option.getOrThrow(path)))
    const nar = yield* collect(reader.read.narFromPath(expected.path))
    expect(Buffer.compare(nar, expected.nar)).toBe(0)
  }
  return hashParts.length
}))

const mixes = ["ingest", "ingest", "delete", "ingest", "repack", "ingest", "delete", "repack"] as const

describe("chunk store crash safety", () => {
  it.effect("SIGKILL during ingest, GC and repack, many times: live paths stay byte-identical", () => Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "b3-chunk-crash-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    let kills = 0
    let completed = 0
    for (let round = 0; round < 24; round++) {
      const mode = mixes[round % mixes.length]!
      // kill at the 1st..6th line: before, during or after the work; sometimes never
      const killAt = 1 + ((round * 7 + 3) % 6) + (round % 5 === 4 ? 100 : 0)
      const { killed } = yield* Effect.promise(() => runAndKill(dir, round, mode, killAt))
      if (killed) kills++
      else completed++
      yield* checkStore(dir)
      if (existsSync(join(dir, "index", "chunks.sqlite"))) checkDeltaIndex(dir)
    }
    expect(kills).toBeGreaterThan(12)

    // A last GC with nobody else running: what the killed ones left is finished or undone.
    const live = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* openFileChunkStore(dir, crashStoreOptions)
      yield* store.maintenance!.collectGarbage()
      const report = yield* store.maintenance!.verify()
      expect(report.problems).toEqual([])
      checkDeltaIndex(dir)
      const stats = yield* store.maintenance!.stats!()
      const packFiles = readdirSync(join(dir, "packs")).filter((f) => f.endsWith(".pack"))
      expect(packFiles.length).toBe(stats["packs"])
      expect(packFiles.reduce((n, f) => n + statSync(join(dir, "packs", f)).size, 0)).toBe(stats["packBytes"])
      expect(readdirSync(join(dir, "packs")).filter((f) => f.startsWith(".tmp"))).toEqual([])
      // every committed path is readable and was made as its name says
      const hashes = readdirSync(join(dir, "paths")).filter((f) => f.endsWith(".b3p"))
      expect(hashes.length).toBe(report.checked)
      return stats
    }))
    expect(live["paths"]).toBe(yield* checkStore(dir))
    // the paths are alike without being the same: some of what is left is stored as deltas
    expect(live["deltaChunks"]).toBeGreaterThan(0)
    expect(completed + kills).toBe(24)
  }), 600_000)
})
