/**
 * Reading `.drv` files out of any store (through their NAR, so caches work as well as the local
 * store) and loading a derivation with its whole input graph, its store paths parsed once.
 */
import { lstatSync, readFileSync } from "node:fs"
import { Effect, Result, Stream } from "effect"
import * as Derivation from "../core/derivation/index.ts"
import * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import { narEvents } from "../nar/check.ts"
import { BuildFailed } from "../services/store-build.ts"
import type { StoreError } from "../services/store-errors.ts"
import { StoreRead, type StoreReadApi } from "../services/store-read.ts"

const invalid = (drvPath: string, reason: string) => new BuildFailed({ drvPath, reason: `invalid derivation: ${reason}`, logTail: "" })

/**
 * The bytes of a store path that is a single regular file: its NAR decoded once (with whatever
 * checks the store's stream carries, check.ts), the file's contents kept.
 */
export const readRegularFile = (store: StoreReadApi, path: StorePath.StorePath): Effect.Effect<Uint8Array, StoreError | BuildFailed> =>
  Effect.gen(function*() {
    const printed = StorePath.print(path, store.storeDir)
    const parts: Array<Uint8Array> = []
    let size = 0
    let problem: string | undefined
    yield* Stream.runForEachArray(narEvents(store.narFromPath(path)), (events) => Effect.sync(() => {
      for (const event of events) {
        if (problem !== undefined) return
        if (event._tag === "File" && event.size > Derivation.maxDerivationBytes) problem = `larger than ${Derivation.maxDerivationBytes} bytes`
        if (event._tag === "Directory" || event._tag === "Symlink") problem = "not a regular file"
        if (event._tag === "Contents") { parts.push(event.bytes.slice()); size += event.bytes.length }
      }
    })).pipe(Effect.catchTag("BadNar", (bad) => Effect.sync(() => { problem ??= bad.message })))
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
    const parsed = Derivation.parse(bytes, { name: Derivation.nameFromDrvPath(StorePath.baseName(drvPath)), storeDir: store.storeDir, source: printed })
    return Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(invalid(printed, parsed.failure.message))
  })

/** A derivation with its store paths parsed once, as the builder uses them. */
export interface LoadedDerivation {
  readonly path: StorePath.StorePath
  readonly drv: Derivation.Derivation
  /** Input derivations with the output names used. */
  readonly inputDrvs: ReadonlyArray<{ readonly path: StorePath.StorePath; readonly outputs: ReadonlyArray<string> }>
  readonly inputSrcs: ReadonlyArray<StorePath.StorePath>
  /** Output name → path, for outputs whose path is known before building (input-addressed, fixed). */
  readonly outputPaths: ReadonlyMap<string, StorePath.StorePath>
}

/** A derivation graph: every derivation reachable from the roots, by `.drv` base name. */
export type DerivationGraph = ReadonlyMap<string, LoadedDerivation>

const parsePath = (path: string, storeDir: string, drvPath: string) =>
  Result.mapError(StorePath.parse(path, storeDir), (e) => invalid(drvPath, e.message))

/** Parses a derivation's store paths (inputs and known outputs) once. */
const loaded = (path: StorePath.StorePath, drv: Derivation.Derivation, storeDir: string): Result.Result<LoadedDerivation, BuildFailed> => {
  const printed = StorePath.print(path, storeDir)
  const inputDrvs: Array<{ path: StorePath.StorePath; outputs: ReadonlyArray<string> }> = []
  for (const [input, outputs] of drv.inputDrvs) {
    const parsed = parsePath(input, storeDir, printed)
    if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
    inputDrvs.push({ path: parsed.success, outputs })
  }
  const inputSrcs: Array<StorePath.StorePath> = []
  for (const src of drv.inputSrcs) {
    const parsed = parsePath(src, storeDir, printed)
    if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
    inputSrcs.push(parsed.success)
  }
  const outputPaths = new Map<string, StorePath.StorePath>()
  for (const [name, output] of drv.outputs) {
    const known = Derivation.outputPath(output)
    if (known === undefined) continue
    const parsed = parsePath(known, storeDir, printed)
    if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
    outputPaths.set(name, parsed.success)
  }
  return Result.succeed({ path, drv, inputDrvs, inputSrcs, outputPaths })
}

/**
 * A valid `.drv` read straight from where the store keeps it (`realStoreDir`, as a BuildHost
 * tells), without a NAR around it: only when it is a regular file whose contents and references
 * give exactly its store path (a `.drv` is a text path), so it is the store's file. Anything else
 * (not there, too large, not parsable, another content) gives undefined: the caller reads it
 * through the store.
 */
const readDerivationFile = (storeDir: string, realStoreDir: string, drvPath: StorePath.StorePath): LoadedDerivation | undefined => {
  try {
    const file = `${realStoreDir}/${StorePath.baseName(drvPath)}`
    const st = lstatSync(file)
    if (!st.isFile() || st.size > Derivation.maxDerivationBytes || !drvPath.name.endsWith(Derivation.drvExtension)) return undefined
    const bytes = readFileSync(file)
    const parsed = Derivation.parse(bytes, { name: Derivation.nameFromDrvPath(StorePath.baseName(drvPath)), storeDir, source: StorePath.print(drvPath, storeDir) })
    if (Result.isFailure(parsed)) return undefined
    const node = loaded(drvPath, parsed.success, storeDir)
    if (Result.isFailure(node)) return undefined
    const references = [...node.success.inputDrvs.map((i) => i.path), ...node.success.inputSrcs]
    const expected = StorePath.makeText(drvPath.name, Hash.hashBytes("sha256", bytes), references, storeDir)
    return StorePath.equals(expected, drvPath) ? node.success : undefined
  } catch {
    return undefined
  }
}

/**
 * Loads the roots and all their input derivations from the store in the context (breadth first,
 * several reads at once). With `realStoreDir` (the store's files are on this machine), valid `.drv`
 * files are read directly from there when they check out (readDerivationFile).
 */
export const loadDerivationGraph = (
  roots: ReadonlyArray<StorePath.StorePath>,
  options: { readonly realStoreDir?: string | undefined } = {}
): Effect.Effect<DerivationGraph, StoreError | BuildFailed, StoreRead> => Effect.gen(function*() {
  const store = yield* StoreRead
  const graph = new Map<string, LoadedDerivation>()
  let frontier = [...new Map(roots.map((r) => [StorePath.baseName(r), r])).values()]
  const realStoreDir = options.realStoreDir
  while (frontier.length > 0) {
    const valid = realStoreDir === undefined ? new Set<string>() : new Set((yield* store.queryValidPaths(frontier)).map(StorePath.baseName))
    const direct = (path: StorePath.StorePath) =>
      realStoreDir !== undefined && valid.has(StorePath.baseName(path)) ? readDerivationFile(store.storeDir, realStoreDir, path) : undefined
    const found = yield* Effect.forEach(frontier, (path) => Effect.suspend(() => {
      const node = direct(path)
      return node !== undefined ? Effect.succeed(node)
        : Effect.flatMap(readDerivation(store, path), (drv) => Effect.fromResult(loaded(path, drv, store.storeDir)))
    }), { concurrency: 8 })
    for (const node of found) graph.set(StorePath.baseName(node.path), node)
    const next = new Map<string, StorePath.StorePath>()
    for (const node of found) {
      for (const input of node.inputDrvs) {
        const key = StorePath.baseName(input.path)
        if (!graph.has(key)) next.set(key, input.path)
      }
    }
    frontier = [...next.values()]
  }
  return graph
})

/**
 * The hashes a derivation's outputs are known by in realisations (Nix's `staticOutputHashes`:
 * hashDerivationModulo with masked outputs), its inputs read from the store of the context.
 */
export const staticOutputHashes = (drvPath: StorePath.StorePath): Effect.Effect<ReadonlyMap<string, Hash.Hash>, StoreError | BuildFailed, StoreRead> =>
  Effect.gen(function*() {
    const store = yield* StoreRead
    const graph = yield* loadDerivationGraph([drvPath])
    const byPrinted = new Map([...graph.values()].map((node) => [StorePath.print(node.path, store.storeDir), node.drv]))
    const root = graph.get(StorePath.baseName(drvPath))!
    const printed = StorePath.print(drvPath, store.storeDir)
    const hashed = Derivation.hashDerivationModulo(root.drv, true, { lookup: (p) => byPrinted.get(p), storeDir: store.storeDir })
    if (Result.isFailure(hashed)) return yield* invalid(printed, hashed.failure.message)
    return hashed.success.hashes
  })
