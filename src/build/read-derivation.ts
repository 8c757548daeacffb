/**
 * Reading `.drv` files out of any store (through their NAR, so caches work as well as the local
 * store) and loading a derivation with its whole input graph.
 */
import { Effect, Result, Stream } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as StorePath from "../core/store-path.ts"
import { NarDecoder } from "../nar/index.ts"
import type { NarEvent } from "../nar/events.ts"
import { BuildFailed } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import type { StoreReadApi } from "../services/store-read.ts"

/** Derivations are small; a larger "derivation" is refused rather than read into memory. */
const maxDerivationSize = 64 * 1024 * 1024

const invalid = (drvPath: string, reason: string) => new BuildFailed({ drvPath, reason: `invalid derivation: ${reason}`, logTail: "" })

/** The bytes of a store path that is a single regular file. */
const readRegularFile = (store: StoreReadApi, path: StorePath.StorePath): Effect.Effect<Uint8Array, StoreError | BuildFailed> =>
  Effect.gen(function*() {
    const printed = StorePath.print(path, store.storeDir)
    const decoder = new NarDecoder()
    const events: Array<NarEvent> = []
    const parts: Array<Uint8Array> = []
    let size = 0
    let problem: string | undefined
    const take = () => {
      for (const event of events) {
        if (event._tag === "File" && event.size > maxDerivationSize) problem = `larger than ${maxDerivationSize} bytes`
        if (event._tag === "Directory" || event._tag === "Symlink") problem = "not a regular file"
        if (event._tag === "Contents") { parts.push(event.bytes.slice()); size += event.bytes.length }
      }
      events.length = 0
    }
    yield* Stream.runForEach(store.narFromPath(path), (chunk) => Effect.suspend(() => {
      if (problem !== undefined) return Effect.void
      const bad = decoder.push(chunk, events)
      if (bad) problem = bad.message
      take()
      return Effect.void
    }))
    if (problem === undefined) problem = decoder.end()?.message
    if (problem !== undefined) return yield* invalid(printed, problem)
    const bytes = new Uint8Array(size)
    let offset = 0
    for (const part of parts) { bytes.set(part, offset); offset += part.length }
    return bytes
  })

/** Reads and parses one `.drv` from a store. */
export const readDerivation = (store: StoreReadApi, drvPath: StorePath.StorePath): Effect.Effect<Derivation.Derivation, StoreError | BuildFailed> =>
  Effect.flatMap(readRegularFile(store, drvPath), (bytes) => {
    const printed = StorePath.print(drvPath, store.storeDir)
    if (!drvPath.name.endsWith(Derivation.drvExtension)) return Effect.fail(invalid(printed, "the path does not end in .drv"))
    const parsed = Derivation.parse(bytes, { name: Derivation.nameFromDrvPath(drvPath.name), storeDir: store.storeDir, source: printed })
    return Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(invalid(printed, parsed.failure.message))
  })

/** A derivation graph: every derivation reachable from the roots, by `.drv` path. */
export type DerivationGraph = ReadonlyMap<string, Derivation.Derivation>

/** Loads the roots and all their input derivations (breadth first, several reads at once). */
export const loadDerivationGraph = (
  store: StoreReadApi,
  roots: ReadonlyArray<StorePath.StorePath>
): Effect.Effect<DerivationGraph, StoreError | BuildFailed> => Effect.gen(function*() {
  const graph = new Map<string, Derivation.Derivation>()
  let frontier = [...new Set(roots.map((r) => StorePath.print(r, store.storeDir)))]
  while (frontier.length > 0) {
    const loaded = yield* Effect.forEach(frontier, (path) => Effect.flatMap(
      Effect.fromResult(Result.mapError(StorePath.parse(path, store.storeDir), (e) => invalid(path, e.message))),
      (parsed) => Effect.map(readDerivation(store, parsed), (drv) => [path, drv] as const)), { concurrency: 8 })
    for (const [path, drv] of loaded) graph.set(path, drv)
    const next = new Set<string>()
    for (const [, drv] of loaded) for (const input of drv.inputDrvs.keys()) if (!graph.has(input)) next.add(input)
    frontier = [...next]
  }
  return graph
})
