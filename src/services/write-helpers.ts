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
import { FileNotFound, NarDecoder, narFromPath, ReferenceScanner } from "../nar/index.ts"
import type { NarEvent } from "../nar/events.ts"
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

/** A missing input stays `FileNotFound` (the user's mistake); any other file-system failure is a StoreIoError. */
const fsError = (store: StoreReadApi, fsPath: string) => (e: unknown): FileNotFound | StoreIoError =>
  e instanceof FileNotFound ? e
    : new StoreIoError({ store: store.uri, operation: `read ${fsPath}`, reason: e instanceof Error ? e.message : String(e) })

/**
 * One pass over a NAR: its sha256 (and, for recursive hashing with another algorithm, that hash
 * too), its size, the candidate references it contains, and for flat ingestion the hash of the
 * single regular file's contents (decoded from the NAR on the way).
 */
const digestNar = <E>(
  nar: Stream.Stream<Uint8Array, E>,
  method: "flat" | "recursive",
  algorithm: Hash.HashAlgorithm,
  candidates: ReadonlyArray<StorePath.StorePath>
) => Effect.gen(function*() {
  const narHasher = Hash.hasher("sha256")
  const caHasher = method === "flat" || algorithm !== "sha256" ? Hash.hasher(algorithm) : undefined
  const decoder = method === "flat" ? new NarDecoder() : undefined
  const events: Array<NarEvent> = []
  let regularFile = true
  let first = true
  const scanner = new ReferenceScanner(candidates.map((c) => c.hashPart))
  let size = 0
  yield* Stream.runForEach(nar, (chunk) => Effect.sync(() => {
    size += chunk.length
    narHasher.update(chunk)
    scanner.push(chunk)
    if (!decoder) { caHasher?.update(chunk); return }
    decoder.push(chunk, events)
    for (const event of events) {
      if (first && event._tag !== "File") regularFile = false
      first = false
      if (event._tag === "Contents") caHasher!.update(event.bytes)
    }
    events.length = 0
  }))
  const narHash = narHasher.digest()
  const found = new Set(scanner.found())
  return {
    narHash,
    caHash: caHasher ? caHasher.digest() : narHash,
    regularFile,
    size,
    references: candidates.filter((c) => found.has(c.hashPart))
  }
})

/** `addPath` in two passes over the file system: hash (and scan) first, then add under the computed path. */
export const addPathTwoPass = (store: StoreReadApi, core: StoreWriteCore) =>
  (fsPath: string, options: AddPathOptions = {}): Effect.Effect<PathInfo, StoreError> => Effect.gen(function*() {
    const name = yield* nameOf(store, fsPath, options)
    const method = options.method ?? "recursive"
    const algorithm = options.algorithm ?? "sha256"
    const nar = Stream.mapError(narFromPath(fsPath), fsError(store, fsPath))
    const digest = yield* digestNar(nar, method, algorithm, options.references ?? [])
    if (method === "flat" && !digest.regularFile) {
      return yield* new StoreIoError({ store: store.uri, operation: "add path", reason: `${fsPath} is not a regular file (flat ingestion takes a single file)` })
    }
    const narHash = digest.narHash
    const caHash = digest.caHash
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
