/**
 * The parts of `StoreWrite` that every layer shares: given a layer's own `addToStore` and
 * `addSignatures`, this derives `addPath`, `addText` and `addMultiple` from them. A layer can
 * still replace any of them with a faster one of its own.
 */
import { Effect, Result, Semaphore, Stream } from "effect"
import { basename } from "node:path"
import * as ContentAddress from "../core/content-address.ts"
import * as ByteString from "../core/byte-string.ts"
import * as Hash from "../core/hash.ts"
import { ownString } from "../core/own-string.ts"
import * as StorePath from "../core/store-path.ts"
import * as Tree from "../nar/tree.ts"
import { checkNar, type NarCheckOptions, type NarCheckResult } from "../nar/check.ts"
import { FileNotFound, narFromPath } from "../nar/fs/index.ts"
import { topoSortInfos } from "./closure.ts"
import { type ReferenceCycle, StoreIoError } from "./store-errors.ts"
import { sortReferences, type PathInfo } from "../core/path-info.ts"
import type { StoreError } from "./store-errors.ts"
import type { StoreReadApi } from "./store-read.ts"
import type { AddMultipleOptions, AddPathOptions, StoreWriteApi } from "./store-write.ts"

export type StoreWriteCore = Pick<StoreWriteApi, "addToStore" | "addSignatures">

/**
 * What adding a file-system path as a content-addressed path computes in its one pass over the
 * NAR (check.ts): the NAR's sha256 and size, the content hash for `method` and `algorithm`
 * (the NAR's, or for flat ingestion the single regular file's bytes) and which candidate
 * references occur. The NAR is b3's own dump of the path, so its structure is not re-validated
 * unless the events are needed.
 */
export const contentDigestOptions = (options: AddPathOptions): NarCheckOptions => ({
  contentHash: { method: options.method ?? "recursive", algorithm: options.algorithm ?? "sha256" },
  references: (options.references ?? []).map((r) => r.hashPart),
  validate: false
})

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
  digest: NarCheckResult
): Effect.Effect<PathInfo, StoreIoError> => Effect.gen(function*() {
  const name = yield* Effect.mapError(
    Effect.fromResult(StorePath.validateName(options.name ?? basename(fsPath))),
    (e) => new StoreIoError({ store: uri, operation: "add path", reason: e.message }))
  const method = options.method ?? "recursive"
  if (method === "flat" && digest.root !== "regular" && digest.root !== "executable") {
    return yield* new StoreIoError({ store: uri, operation: "add path", reason: `${fsPath} is not a regular file (flat ingestion takes a single file)` })
  }
  const found = new Set(digest.references)
  const references = sortReferences((options.references ?? []).filter((r) => found.has(r.hashPart)))
  const caHash = digest.contentHash!
  if (references.length > 0 && !(method === "recursive" && caHash.algorithm === "sha256")) {
    return yield* new StoreIoError({ store: uri, operation: "add path", reason: "only recursive sha256 paths may have references" })
  }
  const ca = ContentAddress.fixed(method, caHash)
  const path = ContentAddress.storePath(ca, name, { references, storeDir })
  return { path, narHash: digest.narHash, narSize: digest.narSize, references, signatures: [], ca }
})

/** `addPath` in two passes over the file system: hash (and scan) first, then add under the computed path. */
export const addPathTwoPass = (store: StoreReadApi, core: StoreWriteCore) =>
  (fsPath: string, options: AddPathOptions = {}): Effect.Effect<PathInfo, StoreError> => Effect.gen(function*() {
    const nar = narFromFileSystem(store.uri, fsPath)
    let bytes = 0
    const counted = options.onProgress ? Stream.tap(nar, (chunk) => Effect.sync(() => options.onProgress!(bytes += chunk.length))) : nar
    const digest = yield* checkNar(counted, contentDigestOptions(options))
    const info = yield* contentAddressedInfo(store.uri, store.storeDir, fsPath, options, digest)
    yield* core.addToStore(info, nar)
    return info
  })

/** `addText`: a single regular file, content-addressed as `text:sha256`, as `builtins.toFile`. */
export const addTextVia = (store: StoreReadApi, core: StoreWriteCore) =>
  (name: string, text: string | Uint8Array, references: ReadonlyArray<StorePath.StorePath> = []): Effect.Effect<PathInfo, StoreError> =>
    Effect.gen(function*() {
      const valid = yield* Effect.mapError(Effect.fromResult(StorePath.validateName(name)),
        (e) => new StoreIoError({ store: store.uri, operation: "add text", reason: e.message }))
      const contents = typeof text === "string" ? ByteString.encode(text) : text
      const ca = ContentAddress.text(Hash.hashBytes("sha256", contents))
      const refs = sortReferences(references)
      const path = ContentAddress.storePath(ca, valid, { references: refs, storeDir: store.storeDir })
      const nar = yield* Effect.fromResult(Tree.toNar(Tree.regular(contents)))
      const info: PathInfo = { path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: refs, signatures: [], ca }
      yield* core.addToStore(info, Stream.make(nar))
      return info
    })

/** What `addInDependencyOrder` gives the adder of one path. */
export interface OrderedAddControl {
  /** Runs `effect` within the bound on NARs read at once (`AddMultipleOptions.concurrency`). */
  readonly limit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Waits until the path's references among the items have been added, or are `committing`: queued
   * for a registration that comes before (or in the same transaction as) any queued after it.
   */
  readonly referencesAdded: Effect.Effect<void>
  /** Tells referrers waiting in `referencesAdded` that this path is queued for registration (see there). */
  readonly committing: Effect.Effect<void>
}

/**
 * The items without repeats (the first for each path), dependencies first, with each one's position
 * in that order by its path's base name (a flat string of its own: kept for a whole add); a
 * reference cycle fails.
 */
export const inDependencyOrder = <I extends { readonly info: PathInfo }>(
  items: ReadonlyArray<I>,
  storeDir: string
): Result.Result<{ readonly ordered: ReadonlyArray<I>; readonly position: Map<string, number> }, ReferenceCycle> => {
  const position = new Map<string, number>()
  const unique: Array<I> = []
  for (const item of items) {
    const key = StorePath.baseName(item.info.path)
    if (!position.has(key)) { position.set(ownString(key), unique.length); unique.push(item) }
  }
  return Result.map(topoSortInfos(unique.map((i) => i.info), storeDir), (infos) => {
    const ordered: Array<I> = []
    for (const info of infos) {
      const key = StorePath.baseName(info.path)
      ordered.push(unique[position.get(key)!]!)
      position.set(key, ordered.length - 1)
    }
    return { ordered, position }
  })
}

/**
 * The frame of `addMultiple`: items are deduplicated and sorted dependencies first (a reference
 * cycle fails at once), then `add` runs for many of them at once; each `add` decides when to wait
 * for its references (before reading its NAR, or only before registering it). A path is reported
 * added (and its referrers released) only when its `add` succeeded; the first failure interrupts
 * the others, so a referrer of a failed path never gets past `referencesAdded`.
 */
export const addInDependencyOrder = <I extends { readonly info: PathInfo }, E, R>(
  items: ReadonlyArray<I>,
  options: AddMultipleOptions,
  storeDir: string,
  add: (item: I, control: OrderedAddControl) => Effect.Effect<void, E, R>
): Effect.Effect<void, E | ReferenceCycle, R> => Effect.gen(function*() {
  // Kept per path for the whole add (10,000 paths for a large closure): its base name once, as the
  // key of its position in dependency order, and one byte for whether it is added (or committing).
  // Only the paths waiting for references have anything more (their resumers in `waiting`).
  const { ordered: byOrder, position } = yield* Effect.fromResult(inDependencyOrder(items, storeDir))
  const added = new Uint8Array(byOrder.length)
  const waiting = new Map<number, Set<() => void>>()
  const markAdded = (at: number) => {
    if (added[at] === 1) return
    added[at] = 1
    const resumers = waiting.get(at)
    if (resumers === undefined) return
    waiting.delete(at)
    for (const resume of resumers) resume()
  }
  /** Resumes once every path at `refs` is added. */
  const awaitAdded = (refs: ReadonlyArray<number>): Effect.Effect<void> => Effect.suspend(() =>
    refs.every((r) => added[r] === 1) ? Effect.void : Effect.callback<void>((resume) => {
      // checked again here: the references added since are not waited for
      const pending = refs.filter((r) => added[r] === 0)
      if (pending.length === 0) return resume(Effect.void)
      let left = pending.length
      const one = () => { if (--left === 0) resume(Effect.void) }
      for (const r of pending) {
        let set = waiting.get(r)
        if (set === undefined) { set = new Set(); waiting.set(r, set) }
        set.add(one)
      }
      // interrupted: forget this waiter
      return Effect.sync(() => { for (const r of pending) waiting.get(r)?.delete(one) })
    }))
  const concurrency = Math.max(1, options.concurrency ?? 16)
  const reading = yield* Semaphore.make(concurrency)
  const limit = <A, E2, R2>(effect: Effect.Effect<A, E2, R2>) => reading.withPermits(1)(effect)
  // Fibers go in dependency order; a few times `concurrency` of them, so that NARs are read while
  // earlier paths wait for their references (those are always in earlier, running or finished, fibers).
  yield* Effect.forEach(byOrder, (item, at) => {
    const info = item.info
    const refs: Array<number> = []
    for (const ref of info.references) {
      const r = position.get(StorePath.baseName(ref))
      if (r !== undefined && r !== at && !refs.includes(r)) refs.push(r)
    }
    const committing = Effect.sync(() => markAdded(at))
    return Effect.sync(() => options.onStart?.(info)).pipe(
      Effect.andThen(add(item, { limit, referencesAdded: awaitAdded(refs), committing })),
      Effect.andThen(Effect.sync(() => options.onAdded?.(info))),
      Effect.andThen(committing))
  }, { concurrency: concurrency * 4, discard: true })
})

/** `addMultiple` from `addToStore`: several at once, each started once its references are added. */
export const addMultipleVia = (core: StoreWriteCore, storeDir: string): StoreWriteApi["addMultiple"] =>
  (items, options = {}) => addInDependencyOrder(items, options, storeDir,
    (item, { limit, referencesAdded }) => Effect.andThen(referencesAdded, limit(core.addToStore(item.info, item.nar))))

/** A full `StoreWriteApi` from a layer's core operations. */
export const makeStoreWrite = (store: StoreReadApi, core: StoreWriteCore, overrides: Partial<StoreWriteApi> = {}): StoreWriteApi => ({
  addToStore: core.addToStore,
  addSignatures: core.addSignatures,
  addPath: overrides.addPath ?? addPathTwoPass(store, core),
  addText: overrides.addText ?? addTextVia(store, core),
  addMultiple: overrides.addMultiple ?? addMultipleVia(core, store.storeDir),
  ...(overrides.requiresSignatures === undefined ? {} : { requiresSignatures: overrides.requiresSignatures }),
  ...(overrides.registerRealisation ? { registerRealisation: overrides.registerRealisation } : {})
})
