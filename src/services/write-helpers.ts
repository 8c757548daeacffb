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
import * as Tree from "../nar/tree.ts"
import { NarDecoder, ReferenceScanner } from "../nar/index.ts"
import { FileNotFound, narFromPath } from "../nar/fs/index.ts"
import type { NarEvent } from "../nar/events.ts"
import { topoSortInfos } from "./closure.ts"
import { StoreIoError } from "./store-errors.ts"
import { sortReferences, type PathInfo } from "./path-info.ts"
import type { StoreError } from "./store-errors.ts"
import type { StoreReadApi } from "./store-read.ts"
import type { AddPathOptions, StoreWriteApi } from "./store-write.ts"

export type StoreWriteCore = Pick<StoreWriteApi, "addToStore" | "addSignatures">

/**
 * Digests a NAR as it streams past: its sha256 (and, for recursive hashing with another
 * algorithm, that hash too), its size, which candidate references it contains, and for flat
 * ingestion the hash of the single regular file's contents (decoded from the NAR on the way).
 */
export const narDigester = (method: "flat" | "recursive", algorithm: Hash.HashAlgorithm, candidates: ReadonlyArray<StorePath.StorePath>) => {
  const narHasher = Hash.hasher("sha256")
  const caHasher = method === "flat" || algorithm !== "sha256" ? Hash.hasher(algorithm) : undefined
  const decoder = method === "flat" ? new NarDecoder() : undefined
  const events: Array<NarEvent> = []
  const scanner = new ReferenceScanner(candidates.map((c) => c.hashPart))
  let regularFile = true
  let executable = false
  let first = true
  let size = 0
  return {
    push: (chunk: Uint8Array) => {
      size += chunk.length
      narHasher.update(chunk)
      scanner.push(chunk)
      if (!decoder) { caHasher?.update(chunk); return }
      decoder.push(chunk, events)
      for (const event of events) {
        if (first && event._tag !== "File") regularFile = false
        if (first && event._tag === "File") executable = event.executable
        first = false
        if (event._tag === "Contents") caHasher!.update(event.bytes)
      }
      events.length = 0
    },
    result: (): NarDigestResult => {
      const narHash = narHasher.digest()
      const found = new Set(scanner.found())
      return { method, narHash, caHash: caHasher ? caHasher.digest() : narHash, regularFile, executable, size, references: candidates.filter((c) => found.has(c.hashPart)) }
    }
  }
}

export interface NarDigestResult {
  readonly method: "flat" | "recursive"
  readonly narHash: Hash.Hash
  readonly caHash: Hash.Hash
  readonly regularFile: boolean
  /** For flat ingestion: whether the single file is executable. */
  readonly executable: boolean
  readonly size: number
  readonly references: ReadonlyArray<StorePath.StorePath>
}

/** The NAR of a file-system path; a missing path stays FileNotFound, other failures are StoreIoError. */
export const narFromFileSystem = (uri: string, fsPath: string): Stream.Stream<Uint8Array, FileNotFound | StoreIoError> =>
  Stream.mapError(narFromPath(fsPath), (e): FileNotFound | StoreIoError =>
    e instanceof FileNotFound ? e : new StoreIoError({ store: uri, operation: `read ${fsPath}`, reason: e.message }))

/** The content-addressed PathInfo of a file-system path, from its NAR digest. */
export const contentAddressedInfo = (
  uri: string,
  storeDir: string,
  fsPath: string,
  options: AddPathOptions,
  digest: NarDigestResult
): Effect.Effect<PathInfo, StoreIoError> => Effect.gen(function*() {
  const name = yield* Effect.mapError(
    Effect.fromResult(StorePath.validateName(options.name ?? basename(fsPath))),
    (e) => new StoreIoError({ store: uri, operation: "add path", reason: e.message }))
  if (digest.method === "flat" && !digest.regularFile) {
    return yield* new StoreIoError({ store: uri, operation: "add path", reason: `${fsPath} is not a regular file (flat ingestion takes a single file)` })
  }
  if (digest.references.length > 0 && !(digest.method === "recursive" && digest.caHash.algorithm === "sha256")) {
    return yield* new StoreIoError({ store: uri, operation: "add path", reason: "only recursive sha256 paths may have references" })
  }
  const ca = ContentAddress.fixed(digest.method, digest.caHash)
  const references = sortReferences(digest.references)
  const path = ContentAddress.storePath(ca, name, { references, storeDir })
  return { path, narHash: digest.narHash, narSize: digest.size, references, signatures: [], ca }
})

/** `addPath` in two passes over the file system: hash (and scan) first, then add under the computed path. */
export const addPathTwoPass = (store: StoreReadApi, core: StoreWriteCore) =>
  (fsPath: string, options: AddPathOptions = {}): Effect.Effect<PathInfo, StoreError> => Effect.gen(function*() {
    const nar = narFromFileSystem(store.uri, fsPath)
    const digester = narDigester(options.method ?? "recursive", options.algorithm ?? "sha256", options.references ?? [])
    let bytes = 0
    yield* Stream.runForEach(nar, (chunk) => Effect.sync(() => { digester.push(chunk); options.onProgress?.(bytes += chunk.length) }))
    const info = yield* contentAddressedInfo(store.uri, store.storeDir, fsPath, options, digester.result())
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
      const nar = yield* Effect.fromResult(Tree.toNar(Tree.regular(contents)))
      const info: PathInfo = { path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: refs, signatures: [], ca }
      yield* core.addToStore(info, Stream.make(nar))
      return info
    })

/** `addMultiple`: dependencies first, one at a time. */
export const addMultipleVia = (core: StoreWriteCore): StoreWriteApi["addMultiple"] =>
  (items) => {
    const byKey = new Map(items.map((item) => [StorePath.baseName(item.info.path), item]))
    return Effect.flatMap(Effect.fromResult(topoSortInfos(items.map((i) => i.info))), (ordered) => Effect.forEach(ordered,
      (info) => core.addToStore(info, byKey.get(StorePath.baseName(info.path))!.nar), { discard: true }))
  }

/** A full `StoreWriteApi` from a layer's core operations. */
export const makeStoreWrite = (store: StoreReadApi, core: StoreWriteCore, overrides: Partial<StoreWriteApi> = {}): StoreWriteApi => ({
  addToStore: core.addToStore,
  addSignatures: core.addSignatures,
  addPath: overrides.addPath ?? addPathTwoPass(store, core),
  addText: overrides.addText ?? addTextVia(store, core),
  addMultiple: overrides.addMultiple ?? addMultipleVia(core),
  ...(overrides.requiresSignatures === undefined ? {} : { requiresSignatures: overrides.requiresSignatures })
})
