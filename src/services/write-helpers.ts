/**
 * The parts of `StoreWrite` that every layer shares: given a layer's own `addToStore` and
 * `addSignatures`, this derives `addPath`, `addText` and `addMultiple` from them. A layer can
 * still replace any of them with a faster one of its own.
 */
import { Effect, Stream } from "effect"
import { basename } from "node:path"
import * as ContentAddress from "../core/content-address.ts"
import * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import * as Dump from "../nar/dump.ts"
import { narFromPath, ReferenceScanner } from "../nar/index.ts"
import { topoSortInfos } from "./closure.ts"
import { StoreIoError } from "./errors.ts"
import { sortReferences, type PathInfo } from "./path-info.ts"
import type { StoreError } from "./store-error.ts"
import type { StoreReadApi } from "./store-read.ts"
import type { AddPathOptions, StoreWriteApi } from "./store-write.ts"

export type StoreWriteCore = Pick<StoreWriteApi, "addToStore" | "addSignatures">

const nameOf = (store: StoreReadApi, fsPath: string, options: AddPathOptions) =>
  Effect.mapError(
    Effect.fromResult(StorePath.validateName(options.name ?? basename(fsPath))),
    (e) => new StoreIoError({ store: store.uri, operation: "add path", reason: e.message })
  )

const fsError = (store: StoreReadApi, fsPath: string) => (e: unknown) =>
  new StoreIoError({ store: store.uri, operation: `read ${fsPath}`, reason: e instanceof Error ? e.message : String(e) })

/** Hashes a stream with several algorithms at once and scans it for references. */
const digestStream = <E>(
  stream: Stream.Stream<Uint8Array, E>,
  algorithms: ReadonlyArray<Hash.HashAlgorithm>,
  candidates: ReadonlyArray<StorePath.StorePath>
) => Effect.gen(function*() {
  const hashers = algorithms.map((a) => Hash.hasher(a))
  const scanner = new ReferenceScanner(candidates.map((c) => c.hashPart))
  let size = 0
  yield* Stream.runForEach(stream, (chunk) => Effect.sync(() => {
    size += chunk.length
    for (const h of hashers) h.update(chunk)
    scanner.push(chunk)
  }))
  const found = new Set(scanner.found())
  return { hashes: hashers.map((h) => h.digest()), size, references: candidates.filter((c) => found.has(c.hashPart)) }
})

/** `addPath` in two passes over the file system: hash (and scan) first, then add under the computed path. */
export const addPathTwoPass = (store: StoreReadApi, core: StoreWriteCore) =>
  (fsPath: string, options: AddPathOptions = {}): Effect.Effect<PathInfo, StoreError> => Effect.gen(function*() {
    const name = yield* nameOf(store, fsPath, options)
    const method = options.method ?? "recursive"
    const algorithm = options.algorithm ?? "sha256"
    const nar = Stream.mapError(narFromPath(fsPath), fsError(store, fsPath))
    const algorithms: Array<Hash.HashAlgorithm> = algorithm === "sha256" ? ["sha256"] : ["sha256", algorithm]
    const digest = yield* digestStream(nar, algorithms, options.references ?? [])
    const narHash = digest.hashes[0]!
    let caHash = digest.hashes[digest.hashes.length - 1]!
    if (method === "flat") {
      const file = Stream.mapError(Stream.fromAsyncIterable(
        (async function*() { const { createReadStream } = await import("node:fs"); yield* createReadStream(fsPath) })(),
        fsError(store, fsPath)
      ), fsError(store, fsPath))
      caHash = (yield* digestStream(file, [algorithm], [])).hashes[0]!
    }
    if (digest.references.length > 0 && !(method === "recursive" && algorithm === "sha256")) {
      return yield* new StoreIoError({ store: store.uri, operation: "add path", reason: "only recursive sha256 paths may have references" })
    }
    const ca = ContentAddress.fixed(method, caHash)
    const references = sortReferences(digest.references)
    const path = ContentAddress.storePath(ca, name, { references, storeDir: store.storeDir })
    const info: PathInfo = { path, narHash, narSize: digest.size, references, signatures: [], ca }
    yield* core.addToStore(info, nar)
    return info
  })

/** `addText`: a single regular file, content-addressed as `text:sha256`, as `builtins.toFile`. */
export const addTextVia = (store: StoreReadApi, core: StoreWriteCore) =>
  (name: string, text: string | Uint8Array, references: ReadonlyArray<StorePath.StorePath> = []): Effect.Effect<PathInfo, StoreError> =>
    Effect.gen(function*() {
      const valid = yield* Effect.mapError(Effect.fromResult(StorePath.validateName(name)),
        (e) => new StoreIoError({ store: store.uri, operation: "add text", reason: e.message }))
      const contents = typeof text === "string" ? new TextEncoder().encode(text) : text
      const ca = ContentAddress.text(Hash.hashBytes("sha256", contents))
      const refs = sortReferences(references)
      const path = ContentAddress.storePath(ca, valid, { references: refs, storeDir: store.storeDir })
      const nar = yield* Effect.fromResult(Dump.toNar(Dump.regular(contents)))
      const info: PathInfo = { path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: refs, signatures: [], ca }
      yield* core.addToStore(info, Stream.make(nar))
      return info
    })

/** `addMultiple`: dependencies first, one at a time. */
export const addMultipleVia = (core: StoreWriteCore): StoreWriteApi["addMultiple"] =>
  (items) => {
    const byKey = new Map(items.map((item) => [StorePath.baseName(item.info.path), item]))
    return Effect.forEach(topoSortInfos(items.map((i) => i.info)),
      (info) => core.addToStore(info, byKey.get(StorePath.baseName(info.path))!.nar), { discard: true })
  }

/** A full `StoreWriteApi` from a layer's core operations. */
export const makeStoreWrite = (store: StoreReadApi, core: StoreWriteCore, overrides: Partial<StoreWriteApi> = {}): StoreWriteApi => ({
  addToStore: core.addToStore,
  addSignatures: core.addSignatures,
  addPath: overrides.addPath ?? addPathTwoPass(store, core),
  addText: overrides.addText ?? addTextVia(store, core),
  addMultiple: overrides.addMultiple ?? addMultipleVia(core)
})
