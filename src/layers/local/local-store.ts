/**
 * The local store: contents in a store dir on disk, metadata in a SQLite database with Nix's
 * schema at the place Nix keeps it. Opened with `local`, `local?root=/tmp/r`, or a path.
 */
import { Context, Effect, Layer, Option, Result, type Scope, Stream } from "effect"
import { chmodSync, mkdirSync, readFileSync } from "node:fs"
import * as Derivation from "../../core/derivation/index.ts"
import { join } from "node:path"
import * as StorePath from "../../core/store-path.ts"
import { forEachNarChunk, narFromPath } from "../../nar/fs/index.ts"
import { PathNotValid, StoreCorrupt, StoreIoError } from "../../services/store-errors.ts"
import type { PathInfo } from "../../core/path-info.ts"
import type { StoreError } from "../../services/store-errors.ts"
import { StoreRead, type StoreReadApi } from "../../services/store-read.ts"
import { StoreWrite, type StoreWriteApi } from "../../services/store-write.ts"
import { makeStoreWrite } from "../../services/write-helpers.ts"
import { addBuilt, addFromNar, addMultipleFromNars, addPathOnePass, withGroupCommit, type AddContext } from "./add.ts"
import { StoreDatabase } from "./database.ts"
import { ioError, trySync } from "./fs-ops.ts"
import { makeLayout, type LocalStoreLayout } from "./layout.ts"
import { addIndirectRoot, collectGarbage, findRootLinks } from "./gc.ts"
import { findRuntimeRoots } from "./runtime-roots.ts"
import { optimisePaths } from "./optimise.ts"
import { recover } from "./recovery.ts"
import { verifyStore } from "./verify.ts"
import { StoreMaintenance, type StoreMaintenanceApi } from "../../services/store-maintenance.ts"
import { BuildHost, type BuildHostApi } from "../../services/build-host.ts"
import { BuildLogs, type BuildLogsApi } from "../../services/build-logs.ts"
import { buildLogs, openBuildLog } from "./build-logs.ts"
import { makeNixLocks } from "./nix-locks.ts"
import { makeSyncHelper } from "./sync-helper.ts"
import { tempPlace, tempRootsFile } from "./temp-roots.ts"
import { openDatabase } from "./schema.ts"

export interface LocalStoreOptions {
  /** Physical root of a chroot store (like `nix --store /tmp/r`); omit for the real store dir. */
  readonly root?: string
  /** Logical store dir; default /nix/store. */
  readonly storeDir?: string
  /** State dir (db, gcroots); default `<root>/nix/var/nix`. */
  readonly stateDir?: string
  /** The URI it was opened from, for messages. */
  readonly uri?: string
  /** Build logs; default `<root>/nix/var/log/nix` (Nix's NIX_LOG_DIR). */
  readonly logDir?: string
}

export interface LocalStore {
  readonly layout: LocalStoreLayout
  readonly db: StoreDatabase
  readonly read: StoreReadApi
  readonly write: StoreWriteApi
  readonly maintenance: StoreMaintenanceApi
  /** Builds into this store: outputs are moved in from where the sandbox left them and registered in one transaction. */
  readonly buildHost: BuildHostApi
  readonly logs: BuildLogsApi
}

/** Nix records a derivation's known output paths (`DerivationOutputs`) when its `.drv` is registered. */
const derivationOutputsOf = (storeDir: string) => (info: PathInfo, realPath: string): Readonly<Record<string, string>> | undefined => {
  if (!info.path.name.endsWith(Derivation.drvExtension)) return undefined
  try {
    const parsed = Derivation.parse(readFileSync(realPath), { name: Derivation.nameFromDrvPath(StorePath.baseName(info.path)), storeDir })
    if (Result.isFailure(parsed)) return undefined
    const outputs: Record<string, string> = {}
    for (const [name, output] of parsed.success.outputs) {
      const path = Derivation.outputPath(output)
      if (path !== undefined) outputs[name] = path
    }
    return outputs
  } catch {
    return undefined
  }
}

/** The local store's own operations beyond read/write (verify, GC), for programs that need them. */
export class LocalStoreHandle extends Context.Service<LocalStoreHandle, LocalStore>()("b3/LocalStore") {}

/** The store's URI for messages, as a user would write it (not percent-encoded). */
const uriOf = (options: LocalStoreOptions) => {
  if (options.uri !== undefined) return options.uri
  const params = [...(options.root ? [`root=${options.root}`] : []), ...(options.storeDir ? [`store=${options.storeDir}`] : [])]
  return params.length > 0 ? `local?${params.join("&")}` : "local"
}

const openFiles = (uri: string, layout: LocalStoreLayout) => trySync(uri, "open store", () => {
  mkdirSync(layout.realStoreDir, { recursive: true })
  chmodSync(layout.realStoreDir, 0o1775)
  for (const dir of [layout.gcRootsDir, layout.tempRootsDir, join(layout.stateDir, "profiles")]) mkdirSync(dir, { recursive: true })
  return openDatabase(layout.dbDir)
}).pipe(Effect.flatMap((db) => typeof db === "string"
  ? Effect.fail(new StoreCorrupt({ store: uri, reason: db }))
  : Effect.succeed(new StoreDatabase(db, layout.storeDir))))

/** Opens a local store for the lifetime of the scope (the database is closed when it ends). */
export const make = (options: LocalStoreOptions = {}): Effect.Effect<LocalStore, StoreIoError | StoreCorrupt, Scope.Scope> =>
  Effect.gen(function*() {
    const storeDir = options.storeDir ?? StorePath.defaultStoreDir
    const uri = uriOf(options)
    const layout = makeLayout({ storeDir, ...(options.root ? { root: options.root } : {}), ...(options.stateDir ? { stateDir: options.stateDir } : {}), ...(options.logDir ? { logDir: options.logDir } : {}) })
    const db = yield* Effect.acquireRelease(openFiles(uri, layout), (db) => Effect.sync(() => db.close()))
    const temp = yield* trySync(uri, "open store", () => tempPlace(layout))
    yield* trySync(uri, "recover store", () => recover(layout, temp))
    const locks = yield* makeNixLocks(uri, {
      rootsFile: tempRootsFile(layout), gcLockFile: join(layout.stateDir, "gc.lock"), gcSocket: join(layout.stateDir, "gc-socket", "socket")
    })

    const print = (path: StorePath.StorePath) => StorePath.print(path, storeDir)
    const notValid = (path: StorePath.StorePath) => new PathNotValid({ path: print(path), store: uri })
    const query = (path: StorePath.StorePath): Effect.Effect<PathInfo, StoreError> =>
      trySync(uri, "query path info", () => db.queryPathInfo(path)).pipe(Effect.flatMap((row): Effect.Effect<PathInfo, StoreError> =>
        row === undefined ? Effect.fail(notValid(path))
          : Result.isSuccess(row) ? Effect.succeed(row.success)
          : Effect.fail(new StoreCorrupt({ store: uri, reason: `row for ${row.failure.path}: ${row.failure.reason}` }))))
    const parsePaths = (paths: ReadonlyArray<string>) => paths.flatMap((p) => {
      const parsed = StorePath.parse(p, storeDir)
      return Result.isSuccess(parsed) ? [parsed.success] : []
    })

    const read: StoreReadApi = {
      uri,
      storeDir,
      queryPathInfo: query,
      isValidPath: (path) => trySync(uri, "query path", () => db.isValid(path)),
      queryValidPaths: (paths) => trySync(uri, "query paths", () => db.validOf(paths)),
      narFromPath: (path) => Stream.unwrap(Effect.map(query(path), () =>
        Stream.mapError(narFromPath(join(layout.realStoreDir, StorePath.baseName(path))), ioError(uri, `read ${print(path)}`)))),
      // 128 KiB chunks, as the file cache's (servers/http-cache.ts, the one user): 16 transfers hold 4 x 4 x 128 KiB
      forEachNarChunk: (path, consume) => Effect.flatMap(query(path), () =>
        forEachNarChunk(join(layout.realStoreDir, StorePath.baseName(path)), consume, { ahead: 4, chunkBytes: 128 * 1024 }).pipe(
          Effect.catch((e) => e === "stop" ? Effect.void : Effect.fail(ioError(uri, `read ${print(path)}`)(e))))),
      queryPathFromHashPart: (hashPart) => trySync(uri, "query hash part", () => db.pathFromHashPart(hashPart)).pipe(
        Effect.map((p) => Option.flatMap(Option.fromNullishOr(p), (p) => Option.fromNullishOr(parsePaths([p])[0])))),
      queryReferrers: (path) => trySync(uri, "query referrers", () => parsePaths(db.referrers(path)).sort(StorePath.compare)),
      queryRealisation: (id) => trySync(uri, "query realisation", () => db.queryRealisation(id)).pipe(Effect.flatMap((row) =>
        row === undefined ? Effect.succeed(Option.none())
          : Result.isSuccess(row) ? Effect.succeed(Option.some(row.success))
          : Effect.fail(new StoreCorrupt({ store: uri, reason: `realisation with output ${row.failure.path}: ${row.failure.reason}` })))),
      queryAllValidPaths: () => trySync(uri, "list paths", () => parsePaths(db.allValidPaths()))
    }

    const syncHelper = yield* makeSyncHelper(uri)
    const ctx: AddContext = withGroupCommit({ uri, layout, db, temp, locks, syncFileSystem: syncHelper.sync, derivationOutputsOf: derivationOutputsOf(storeDir) })
    const write = makeStoreWrite(read, {
      addToStore: (info, nar) => addFromNar(ctx, info, nar),
      addSignatures: (path, signatures) => Effect.gen(function*() {
        const info = yield* query(path)
        yield* trySync(uri, "add signatures", () => db.setSignatures(path, [...new Set([...info.signatures, ...signatures])]))
      })
    }, {
      addPath: addPathOnePass(ctx),
      addMultiple: addMultipleFromNars(ctx),
      requiresSignatures: true,
      registerRealisation: (r) => trySync(uri, "register realisation", () => db.registerRealisation(r))
    })

    const maintenance: StoreMaintenanceApi = {
      verify: (options = {}) => verifyStore(layout, db, options),
      collectGarbage: (options = {}) => collectGarbage({ uri, layout, db, locks, temp }, options),
      findRoots: (options = {}) => trySync(uri, "find roots", () => {
        const runtime = findRuntimeRoots(layout, { censor: options.censor ?? false })
        const valid = new Set(db.validOf(parsePaths([...new Set(runtime.map((r) => r.target))])).map(print))
        return [...findRootLinks(layout), ...runtime.filter((r) => valid.has(r.target))]
      }),
      optimise: (options = {}) => Effect.gen(function*() {
        const warn = options.warn ?? (() => {})
        if (options.paths !== undefined) {
          const physical = options.paths.flatMap((p) => parsePaths([p]).map((sp) => join(layout.realStoreDir, StorePath.baseName(sp))))
          return yield* optimisePaths({ uri, layout }, physical, { warn })
        }
        // the whole store, path by path, each made a temporary root first (the collector may run meanwhile)
        const all = parsePaths(yield* trySync(uri, "list valid paths", () => db.allValidPaths()))
        yield* locks.addTempRoots(all.map(print))
        const still = yield* trySync(uri, "query paths", () => db.validOf(all))
        return yield* optimisePaths({ uri, layout }, still.map((sp) => join(layout.realStoreDir, StorePath.baseName(sp))), { warn, wholeStore: true })
      }),
      addIndirectRoot: (link) => trySync(uri, "add an indirect root", () => addIndirectRoot(layout, link)),
      allValidPaths: () => trySync(uri, "list valid paths", () => db.allValidPaths()),
      validDerivers: (path) => trySync(uri, "query derivers", () => db.validDerivers(path)),
      releaseTempRoots: () => locks.dropTempRoots,
      prepareForClients: () => Effect.andThen(locks.start, syncHelper.start)
    }

    const buildHost: BuildHostApi = {
      storeDir,
      realStoreDir: layout.realStoreDir,
      openLog: (drvPath) => openBuildLog(layout.logDir, drvPath),
      registerBuilt: (built) => addBuilt(ctx, built),
      addTempRoots: (paths) => locks.addTempRoots(paths.map(print))
    }

    return { layout, db, read, write, maintenance, buildHost, logs: buildLogs(uri, layout.logDir) }
  })

/** What a local store provides: reading, writing, hosting builds, its build logs, verify and GC, and its own handle. */
export type LocalStoreServices = StoreRead | StoreWrite | BuildHost | BuildLogs | StoreMaintenance | LocalStoreHandle

/** A local store as a layer (add the builder, e.g. through the registry, to make it build). */
export const layer = (options: LocalStoreOptions = {}): Layer.Layer<LocalStoreServices, StoreIoError | StoreCorrupt> =>
  Layer.effectContext(Effect.map(make(options), (store) =>
    Context.make(StoreRead, store.read).pipe(
      Context.add(StoreWrite, store.write),
      Context.add(BuildHost, store.buildHost),
      Context.add(BuildLogs, store.logs),
      Context.add(StoreMaintenance, store.maintenance),
      Context.add(LocalStoreHandle, store))))


