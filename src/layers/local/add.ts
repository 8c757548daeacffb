/**
 * Adding a path to the local store, crash-safe and safe against concurrent adders:
 *
 * 1. the NAR is validated, hashed and restored under a temporary name in the store dir;
 * 2. the tree is canonicalised and flushed to disk (an fsync per entry for small trees, one syncfs for large);
 * 3. in one write transaction (BEGIN IMMEDIATE, which also serialises other processes): if another
 *    adder won the race the temporary copy is dropped; otherwise leftover garbage at the final
 *    name is moved aside, the temporary tree is renamed into place and the path registered.
 *
 * A crash before the commit leaves at most a temporary tree or unregistered contents, which the
 * next open (recovery.ts) or the next add of the same path removes; a valid row always has its
 * contents.
 */
import { Effect, Stream } from "effect"
import { closeSync, lstatSync, openSync } from "node:fs"
import * as StorePath from "../../core/store-path.ts"
import { checkedNar, checkNarBytes, NarChecker, narEvents, planOf, narInHand, wholeNar, wholeNarMax, type NarCheckResult, type NarExpectation, type NarInHand } from "../../nar/check.ts"
import { decodeNar } from "../../nar/decode.ts"
import type { NarEvent } from "../../nar/events.ts"
import { NarIoError, restoreCheckedFromFd, restoreEventsNow, restoreNarEvents, TargetExists } from "../../nar/fs/index.ts"
import { NarWriter } from "../../nar/nar-writer.ts"
import { PathNotValid, StoreIoError } from "../../services/store-errors.ts"
import type { BuiltPath } from "../../services/build-host.ts"
import type { PathInfo } from "../../core/path-info.ts"
import type { AddMultipleOptions, AddPathOptions, StoreWriteApi } from "../../services/store-write.ts"
import { addInDependencyOrder, contentAddressedInfo, inDependencyOrder, contentDigestOptions, narFromFileSystem } from "../../services/write-helpers.ts"
import type { StoreError } from "../../services/store-errors.ts"
import { expectationOf, verifiedNarEvents } from "../../services/verified-nar.ts"
import { canonicalise } from "../../io/canonicalise.ts"
import { copyFileDurably } from "./copy-file.ts"
import { makeGroupCommit } from "./group-commit.ts"
import type { StoreDatabase } from "./database.ts"
import { ioError, removeTree, rename, syncTrees, trySync } from "./fs-ops.ts"
import type { LocalStoreLayout } from "./layout.ts"
import type { NixLocks } from "./nix-locks.ts"
import type { SyncFileSystem } from "./sync-helper.ts"
import { tempName, type TempPlace } from "./temp-roots.ts"

export interface AddContext {
  readonly uri: string
  readonly layout: LocalStoreLayout
  readonly db: StoreDatabase
  /** Where temporary trees go. */
  readonly temp: TempPlace
  /** Nix's GC protocol: temporary roots. */
  readonly locks: NixLocks
  /** Derivation outputs to record when a `.drv` is registered (path → output name → output path). */
  readonly derivationOutputsOf?: (info: PathInfo, realPath: string) => Readonly<Record<string, string>> | undefined
  /** Flushes the store's file system (syncfs) for a batch too big to flush file by file. */
  readonly syncFileSystem: SyncFileSystem
  /** Commits one restored tree, sharing the flush and transaction with concurrent adders (see `withGroupCommit`). */
  readonly commit?: (entry: TempEntry, onQueued?: Effect.Effect<void>) => Effect.Effect<void, StoreError>
}

/** A restored temporary tree and the path it is to become. */
export interface TempEntry {
  readonly info: PathInfo
  readonly temp: string
  /** Already written with store metadata (a canonical restore): no second pass needed. */
  readonly canonical?: boolean
}

/**
 * For benchmarks only (measuring what durability costs): with B3_BENCH_NO_FSYNC=1 in the environment
 * the local store does not flush new contents before registering them, so a crash can leave
 * registered paths with missing or partial contents. Never set it for real use.
 */
const skipFsyncForMeasurement = () => process.env.B3_BENCH_NO_FSYNC === "1"

/** How the store restores a path's tree: with store metadata, at its temporary name, big files flushed as they grow. */
const storeRestore = () => ({ canonical: true, direct: true, flushBigFiles: !skipFsyncForMeasurement() })

/** The context with group commit: concurrent adds share one flush to disk and one transaction. */
export const withGroupCommit = (ctx: AddContext): AddContext => ({ ...ctx, commit: makeGroupCommit((entries) => Effect.asVoid(commitTemps(ctx, entries))) })

/** Fails with PathNotValid if a reference (other than the path itself) is not valid yet. */
const checkReferences = (ctx: AddContext, info: PathInfo) =>
  trySync(ctx.uri, "check references", () =>
    info.references.find((r) => !StorePath.equals(r, info.path) && !ctx.db.isValid(r))
  ).pipe(Effect.flatMap((missing) => missing
    ? Effect.fail(new PathNotValid({ path: StorePath.print(missing, ctx.layout.storeDir), store: ctx.uri }))
    : Effect.void))

/** A failure to write a path's temporary tree. */
const writeFailed = (ctx: AddContext, reason: string) => new StoreIoError({ store: ctx.uri, operation: "write path", reason })

/** A restore's file-system failures become StoreIoError; the checks' errors pass as they are. */
const restoreFailure = (ctx: AddContext) => <E>(e: E | NarIoError | TargetExists): E | StoreIoError =>
  e instanceof NarIoError || e instanceof TargetExists ? writeFailed(ctx, e.message) : e

/** Restores NAR events (decoded and checked in one pass) into a fresh temporary tree; file-system failures become StoreIoError. */
const restoreToTemp = <E, R>(ctx: AddContext, events: Stream.Stream<NarEvent, E, R>, temp: string) =>
  restoreNarEvents(events, temp, storeRestore()).pipe(Effect.mapError(restoreFailure(ctx)))

/** A big NAR that is a local file as it is (an uncompressed NAR in a file cache): read into reused buffers, checked as it is restored. */
const restoreFileToTemp = (ctx: AddContext, info: PathInfo, file: string, expect: ReadonlyArray<NarExpectation>, temp: string): Effect.Effect<void, StoreError> =>
  Effect.acquireUseRelease(
    trySync(ctx.uri, `read ${file}`, () => openSync(file, "r")),
    (fd) => restoreCheckedFromFd(fd, temp, new NarChecker({ expect: [...expect, expectationOf(info, ctx.layout.storeDir)] }), storeRestore()).pipe(
      Effect.mapError(restoreFailure(ctx))),
    (fd) => Effect.sync(() => closeSync(fd)))

/**
 * Restores a path's NAR into a fresh temporary tree, checked against `info` (and whatever checks
 * the stream carries) in the same pass: a small one read whole first, a bigger one as it streams.
 */
const restoreNarToTemp = <E, R>(ctx: AddContext, info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>, temp: string): Effect.Effect<void, StoreError | E, R> =>
  info.narSize > wholeNarMax
    ? Effect.flatMap(planOf(nar), (plan) => plan.file !== undefined
      ? restoreFileToTemp(ctx, info, plan.file, plan.expect, temp)
      : restoreToTemp(ctx, verifiedNarEvents(info, ctx.layout.storeDir, checkedNar(Effect.succeed(plan))), temp))
    : restoreWholeNarToTemp(ctx, info, nar, temp)

/** A small NAR (or one in memory) read whole, then checked against `info` and written in one synchronous pass. */
const restoreWholeNarToTemp = <E, R>(ctx: AddContext, info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>, temp: string): Effect.Effect<void, StoreError | E, R> =>
  Effect.flatMap(wholeNar(nar, info.narSize), (whole): Effect.Effect<void, StoreError> => {
    const failed = restoreBytesToTemp(ctx, info, whole, temp)
    return failed ? Effect.fail(failed) : Effect.void
  })

/** A NAR's bytes checked against `info` (and the checks they carry) and written into `temp`, at once: the failure if any. */
const restoreBytesToTemp = (ctx: AddContext, info: PathInfo, whole: NarInHand, temp: string): StoreError | undefined => {
  const { events, error } = checkNarBytes(whole.bytes, { expect: [...whole.expect, expectationOf(info, ctx.layout.storeDir)] })
  if (error) return error
  const failed = restoreEventsNow(events, temp, storeRestore())
  return failed ? writeFailed(ctx, failed.message) : undefined
}

/**
 * Makes restored temporary trees the contents of their paths: canonicalise, flush, then in one
 * write transaction rename them into place and register them all. Paths another adder already
 * made valid are skipped: their temporary trees are left, and returned, for the caller to drop.
 */
const commitTemps = (ctx: AddContext, entries: ReadonlyArray<TempEntry>): Effect.Effect<ReadonlyArray<string>, StoreError> => Effect.gen(function*() {
  for (const { temp, canonical } of entries) if (!canonical) yield* trySync(ctx.uri, "canonicalise", () => canonicalise(temp))
  if (!skipFsyncForMeasurement()) yield* syncTrees(ctx.uri, entries.map((e) => e.temp), ctx.layout.realStoreDir, ctx.syncFileSystem)
  // Temporary roots before the paths appear in the store: a collector (b3's or Nix's) keeps them.
  yield* ctx.locks.addTempRoots(entries.map((e) => StorePath.print(e.info.path, ctx.layout.storeDir)))
  const outputs = new Map<string, Readonly<Record<string, string>>>()
  for (const { info, temp } of entries) {
    const own = ctx.derivationOutputsOf?.(info, temp)
    if (own) outputs.set(StorePath.print(info.path, ctx.layout.storeDir), own)
  }
  const { garbage, unused } = yield* trySync(ctx.uri, "register paths", () => ctx.db.immediate(() => {
    // (two adders of one path may share a batch: the first copy wins, the other's temporary tree is dropped)
    // (one query for the batch's paths, not one each)
    const seen = new Set(ctx.db.validOf(entries.map((e) => e.info.path)).map(StorePath.baseName))
    const unused: Array<string> = []
    const fresh = entries.filter(({ info, temp }) => {
      const name = StorePath.baseName(info.path)
      if (seen.has(name)) { unused.push(temp); return false }
      seen.add(name)
      return true
    })
    // A reference must be valid or registered with it: checked before anything is renamed into place.
    for (const { info } of fresh) {
      const missing = info.references.find((r) => !seen.has(StorePath.baseName(r)) && !ctx.db.isValid(r))
      if (missing) throw new Error(`cannot register '${StorePath.print(info.path, ctx.layout.storeDir)}': its reference '${StorePath.print(missing, ctx.layout.storeDir)}' is not valid`)
    }
    const garbage: Array<string> = []
    for (const { info, temp } of fresh) {
      // (`realStoreDir` is normalised: no `join` per path)
      const finalPath = `${ctx.layout.realStoreDir}/${StorePath.baseName(info.path)}`
      // Something not valid left at the path (by a crash, or by hand): a file or an empty directory is
      // replaced by the rename itself; anything else is moved aside first. (No existence check per path.)
      try {
        rename(temp, finalPath)
      } catch (e) {
        if (!replaceRefused(e)) throw e
        const trash = tempName(ctx.temp, "trash")
        rename(finalPath, trash)
        garbage.push(trash)
        rename(temp, finalPath)
      }
    }
    if (fresh.length > 0) ctx.db.register(fresh.map((e) => e.info), Math.floor(Date.now() / 1000), outputs)
    return { garbage, unused }
  }))
  for (const trash of garbage) yield* trySync(ctx.uri, "remove garbage", () => removeTree(trash))
  return unused
})

/** rename(2)'s refusals to replace what is at the target: a directory that is not empty, or a file by a directory and the reverse. */
const replaceRefused = (e: unknown): boolean =>
  ["ENOTEMPTY", "EEXIST", "EISDIR", "ENOTDIR"].includes((e as NodeJS.ErrnoException).code ?? "")

const commitTemp = (ctx: AddContext, entry: TempEntry, onQueued: Effect.Effect<void> = Effect.void) =>
  ctx.commit ? ctx.commit(entry, onQueued) : Effect.andThen(onQueued, Effect.asVoid(commitTemps(ctx, [entry])))

/** A fresh temporary name in the store dir; whatever is left there is removed when the scope closes. */
const scopedTemp = (ctx: AddContext, tag: string) =>
  Effect.acquireRelease(
    Effect.sync(() => tempName(ctx.temp, tag)),
    (temp) => Effect.sync(() => { try { removeTree(temp) } catch { /* recovery removes it on the next open */ } })
  )

/**
 * Holds `paths` as temporary roots of this process before their validity is checked, so a path
 * found valid (and then returned without adding it) is not removed by a collector running at the
 * same time, b3's or Nix's.
 */
const rootFirst = (ctx: AddContext, paths: ReadonlyArray<StorePath.StorePath>) =>
  ctx.locks.addTempRoots(paths.map((path) => StorePath.print(path, ctx.layout.storeDir)))

/** Runs `use` with a fresh temporary name in the store dir, removing whatever is left there afterwards. */
const withTemp = <A, E, R>(ctx: AddContext, tag: string, use: (temp: string) => Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.flatMap(scopedTemp(ctx, tag), use))

export const addFromNar = <E, R>(ctx: AddContext, info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, StoreError | E, R> =>
  Effect.gen(function*() {
    // A temporary root first, then the validity check (as Nix's addToStore): a collector running
    // meanwhile either sees the root or has already removed the path, which is then added again.
    yield* rootFirst(ctx, [info.path])
    const valid = yield* trySync(ctx.uri, "query path", () => ctx.db.isValid(info.path))
    if (valid) return
    yield* checkReferences(ctx, info)
    // one pass: decoded, hashed and checked (with any checks the stream carries) while it is restored
    yield* withTemp(ctx, "add", (temp) => Effect.andThen(
      restoreNarToTemp(ctx, info, nar, temp),
      commitTemp(ctx, { info, temp, canonical: true })))
  })

/** The first reference of `items` that is neither among them nor valid in the store. */
const missingOutside = (ctx: AddContext, items: ReadonlyArray<{ readonly info: PathInfo }>): StorePath.StorePath | undefined => {
  const keys = new Set(items.map(({ info }) => StorePath.baseName(info.path)))
  for (const { info } of items) {
    const missing = info.references.find((r) => !keys.has(StorePath.baseName(r)) && !ctx.db.isValid(r))
    if (missing) return missing
  }
  return undefined
}

/**
 * `addMultiple` for the local store: NARs are read, checked and restored into temporary trees
 * several at once, whatever their order; each tree is committed (flushed, renamed into place and
 * registered) only once the paths it refers to are valid, trees ready together sharing one flush and
 * one transaction (group commit). A path whose NAR fails is never registered, nor is anything that
 * refers to it: the failure interrupts the rest, and unregistered temporary trees are removed.
 */
export const addMultipleFromNars = (ctx: AddContext): StoreWriteApi["addMultiple"] => (items, options = {}) => Effect.gen(function*() {
  // References outside the items must be valid already: checked before any NAR is read.
  const missing = yield* trySync(ctx.uri, "check references", () => missingOutside(ctx, items))
  if (missing) return yield* new PathNotValid({ path: StorePath.print(missing, ctx.layout.storeDir), store: ctx.uri })
  yield* rootFirst(ctx, items.map(({ info }) => info.path))
  if (options.inMemory) return yield* addInMemory(ctx, items, options)
  yield* addInDependencyOrder(items, options, ctx.layout.storeDir, ({ info, nar }, { limit, referencesAdded, committing }) => Effect.gen(function*() {
    if (yield* trySync(ctx.uri, "query path", () => ctx.db.isValid(info.path))) return
    yield* withTemp(ctx, "add", (temp) => Effect.gen(function*() {
      yield* limit(restoreNarToTemp(ctx, info, nar, temp))
      // references queued before this path: registered in an earlier transaction or in the same one
      yield* referencesAdded
      yield* commitTemp(ctx, { info, temp, canonical: true }, committing)
    }))
  }))
})

/**
 * `addMultiple` of NARs already in memory (`AddMultipleOptions.inMemory`), one after another without
 * a fiber each: every NAR is checked and written into its temporary tree in one synchronous pass, and
 * the batch is made durable and registered with one flush and one transaction. Nothing of the batch is
 * registered if one of its NARs fails; their temporary trees are removed.
 */
const addInMemory = <E, R>(
  ctx: AddContext,
  items: ReadonlyArray<{ readonly info: PathInfo; readonly nar: Stream.Stream<Uint8Array, E, R> }>,
  options: AddMultipleOptions
): Effect.Effect<void, StoreError | E, R> => {
  const entries: Array<TempEntry> = []
  const body = Effect.gen(function*() {
    const { ordered } = yield* Effect.fromResult(inDependencyOrder(items, ctx.layout.storeDir))
    const already: Array<PathInfo> = []
    const valid = new Set(yield* trySync(ctx.uri, "query paths", () => ctx.db.validOf(ordered.map(({ info }) => info.path)).map(StorePath.baseName)))
    for (const { info, nar } of ordered) {
      options.onStart?.(info)
      if (valid.has(StorePath.baseName(info.path))) { already.push(info); continue }
      const temp = tempName(ctx.temp, "add")
      entries.push({ info, temp, canonical: true })
      // (bytes in hand are checked and written here, with no effect run per path)
      const inHand = narInHand(nar)
      if (inHand === undefined) yield* restoreWholeNarToTemp(ctx, info, nar, temp)
      else {
        const failed = restoreBytesToTemp(ctx, info, inHand, temp)
        if (failed) return yield* failed
      }
    }
    const unused = yield* commitTemps(ctx, entries)
    for (const temp of unused) yield* trySync(ctx.uri, "remove a temporary tree", () => removeTree(temp))
    if (options.onAdded) for (const info of [...already, ...entries.map((e) => e.info)]) options.onAdded(info)
  })
  // renamed into place when committed; after a failure what is left is removed (after a crash, recovery removes it)
  return Effect.onError(body, () => Effect.sync(() => {
    for (const { temp } of entries) { try { removeTree(temp) } catch { /* recovery removes it on the next open */ } }
  }))
}

/** The size and executable bit of `path` when it is a regular file (not a link to one), else undefined. */
const regularFileAt = (path: string): { readonly size: number; readonly executable: boolean } | undefined => {
  let st
  try { st = lstatSync(path) } catch { return undefined } // narFromFileSystem reports a missing path
  return st.isFile() ? { size: st.size, executable: (st.mode & 0o100) !== 0 } : undefined
}

/**
 * A single regular file is copied with `copyFileDurably` (reads, hashing, writes and flushing
 * overlap), its NAR framing given to `digest` around the contents, so `digest` sees the file's NAR.
 */
const copySingleFile = (
  ctx: AddContext,
  source: string,
  file: { readonly size: number; readonly executable: boolean },
  temp: string,
  digest: (chunk: Uint8Array) => void
): Effect.Effect<void, StoreIoError> => Effect.tryPromise({
  try: async (signal) => {
    const framing = new NarWriter(4096)
    framing.raw(NarWriter.seq.magic)
    framing.raw(file.executable ? NarWriter.seq.executable : NarWriter.seq.regular)
    framing.u64(file.size)
    for (const chunk of framing.take()) digest(chunk)
    await copyFileDurably(source, temp, file.size, file.executable, digest, signal)
    framing.pad(file.size)
    framing.raw(NarWriter.seq.close)
    for (const chunk of framing.take()) digest(chunk)
  },
  catch: ioError(ctx.uri, `add ${source}`)
})

/**
 * `addPath` in one pass: the file system is serialised once, and the NAR is hashed, scanned and
 * restored into a temporary tree at the same time; the store path is known at the end, and the
 * tree is then committed under it.
 */
export const addPathOnePass = (ctx: AddContext) => (fsPath: string, options: AddPathOptions = {}): Effect.Effect<PathInfo, StoreError> =>
  withTemp(ctx, "addpath", (temp) => Effect.gen(function*() {
    const check = contentDigestOptions(options)
    const single = yield* trySync(ctx.uri, `read ${fsPath}`, () => regularFileAt(fsPath))
    let digest: NarCheckResult | undefined
    let bytes = 0
    const progress = (chunk: Uint8Array) => options.onProgress?.(bytes += chunk.length)
    if (single) {
      const checker = new NarChecker(check)
      let bad: StoreError | undefined
      yield* copySingleFile(ctx, fsPath, single, temp, (chunk) => { progress(chunk); bad ??= checker.push(chunk) })
      bad ??= checker.end()
      if (bad) return yield* bad
      digest = checker.result()
    } else {
      const nar = narFromFileSystem(ctx.uri, fsPath)
      yield* restoreToTemp(ctx, narEvents(options.onProgress ? Stream.tap(nar, (chunk) => Effect.sync(() => progress(chunk))) : nar, check, (result) => { digest = result }), temp)
    }
    const info = yield* contentAddressedInfo(ctx.uri, ctx.layout.storeDir, fsPath, options, digest!)
    yield* rootFirst(ctx, [info.path])
    if (yield* trySync(ctx.uri, "query path", () => ctx.db.isValid(info.path))) return info
    yield* checkReferences(ctx, info)
    yield* commitTemp(ctx, { info, temp, canonical: !single })
    return info
  }))

/** A freshly built path: its info (hash, references, deriver) and where its contents are now. */
/** Moves a tree to `temp`: a rename on the same file system, else a copy through its NAR. */
const moveToTemp = (ctx: AddContext, from: string, temp: string): Effect.Effect<void, StoreError> =>
  Effect.suspend(() => {
    try {
      rename(from, temp)
      return Effect.void
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EXDEV") return Effect.fail(ioError(ctx.uri, "move built output")(e))
      return restoreToTemp(ctx, decodeNar(narFromFileSystem(ctx.uri, from)), temp)
    }
  })

/**
 * Registers the outputs of a build: each is moved into the store under a temporary name, then all
 * are renamed into place and registered, with their references and deriver, in one transaction. References must be valid or among `built`.
 */
export const addBuilt = (ctx: AddContext, built: ReadonlyArray<BuiltPath>): Effect.Effect<void, StoreError> => {
  const own = new Set(built.map((b) => StorePath.baseName(b.info.path)))
  return Effect.scoped(Effect.gen(function*() {
    for (const { info } of built) {
      yield* checkReferences(ctx, { ...info, references: info.references.filter((r) => !own.has(StorePath.baseName(r))) })
    }
    const entries: Array<{ info: PathInfo; temp: string }> = []
    for (const { info, output } of built) {
      const temp = yield* scopedTemp(ctx, "built")
      // a NAR read again from the sandbox must be the one its info was computed from
      yield* (output.physicalPath === undefined
        ? restoreToTemp(ctx, verifiedNarEvents(info, ctx.layout.storeDir, output.nar), temp)
        : moveToTemp(ctx, output.physicalPath, temp))
      entries.push({ info, temp })
    }
    yield* commitTemps(ctx, entries)
  }))
}
