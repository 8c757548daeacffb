/**
 * The in-memory store: full `StoreRead` + `StoreWrite` with no I/O, the mock every unit test
 * uses. NARs are kept as the chunks they arrived in. It also hosts builds (`BuildHost`, with
 * `BuildLogs`): given a sandbox (a fake one in tests), the builder builds into it.
 */
import { Context, Effect, Layer, Option, Stream } from "effect"
import { BuildHost, type BuildHostApi } from "../services/build-host.ts"
import { BuildLogs, type BuildLogsApi } from "../services/build-logs.ts"
import * as Realisation from "../core/realisation.ts"
import * as StorePath from "../core/store-path.ts"
import { PathNotValid, StoreCorrupt, Unsupported } from "../services/store-errors.ts"
import type { PathInfo } from "../core/path-info.ts"
import { StoreRead, type StoreReadApi } from "../services/store-read.ts"
import { StoreWrite, type StoreWriteApi } from "../services/store-write.ts"
import { verifiedNar } from "../services/verified-nar.ts"
import { makeStoreWrite } from "../services/write-helpers.ts"

export interface MemoryStoreOptions {
  readonly storeDir?: string
  /** Whether `queryReferrers` is answered (true by default; false mimics a binary cache). */
  readonly indexReferrers?: boolean
  /** Whether adding a path whose references are not valid fails (true by default, as in a local store). */
  readonly checkReferences?: boolean
}

interface Entry {
  info: PathInfo
  readonly nar: ReadonlyArray<Uint8Array>
}

export interface MemoryStore {
  readonly read: StoreReadApi
  readonly write: StoreWriteApi
  readonly buildHost: BuildHostApi
  readonly logs: BuildLogsApi
}

export const make = (options: MemoryStoreOptions = {}): MemoryStore => {
  const storeDir = options.storeDir ?? StorePath.defaultStoreDir
  const uri = "memory://"
  const entries = new Map<string, Entry>()
  const lookup = (path: StorePath.StorePath) => {
    const entry = entries.get(path.hashPart)
    return entry && entry.info.path.name === path.name ? entry : undefined
  }
  const notValid = (path: StorePath.StorePath) => new PathNotValid({ path: StorePath.print(path, storeDir), store: uri })
  const realisations = new Map<string, Realisation.Realisation>()

  const read: StoreReadApi = {
    uri,
    storeDir,
    queryPathInfo: (path) => Effect.suspend(() => {
      const entry = lookup(path)
      return entry ? Effect.succeed(entry.info) : Effect.fail(notValid(path))
    }),
    isValidPath: (path) => Effect.sync(() => lookup(path) !== undefined),
    queryValidPaths: (paths) => Effect.sync(() => paths.filter((p) => lookup(p) !== undefined)),
    narFromPath: (path) => Stream.suspend(() => {
      const entry = lookup(path)
      return entry ? Stream.fromIterable(entry.nar) : Stream.fail(notValid(path))
    }),
    queryPathFromHashPart: (hashPart) => Effect.sync(() => Option.map(Option.fromNullishOr(entries.get(hashPart)), (e) => e.info.path)),
    queryReferrers: (path) => Effect.suspend(() => {
      if (options.indexReferrers === false) return Effect.fail(new Unsupported({ store: uri, operation: "querying referrers" }))
      const key = StorePath.baseName(path)
      return Effect.succeed([...entries.values()]
        .filter((e) => e.info.references.some((r) => StorePath.baseName(r) === key))
        .map((e) => e.info.path)
        .sort(StorePath.compare))
    }),
    queryRealisation: (id) => Effect.sync(() => Option.fromNullishOr(realisations.get(Realisation.printDrvOutput(id)))),
    queryAllValidPaths: () => Effect.sync(() => [...entries.values()].map((e) => e.info.path).sort(StorePath.compare))
  }

  const write = makeStoreWrite(read, {
    addToStore: (info, nar) => Effect.suspend(() => {
      if (lookup(info.path)) return Effect.void
      const missing = options.checkReferences === false ? undefined
        : info.references.find((r) => !StorePath.equals(r, info.path) && !lookup(r))
      if (missing) return Effect.fail(notValid(missing))
      return Stream.runCollect(verifiedNar(info, storeDir, nar)).pipe(
        Effect.map((chunks) => { entries.set(info.path.hashPart, { info, nar: [...chunks] }) })
      )
    }),
    addSignatures: (path, signatures) => Effect.suspend(() => {
      const entry = lookup(path)
      if (!entry) return Effect.fail(notValid(path))
      entry.info = { ...entry.info, signatures: [...new Set([...entry.info.signatures, ...signatures])] }
      return Effect.void
    })
  }, {
    registerRealisation: (r) => Effect.suspend((): Effect.Effect<void, PathNotValid | StoreCorrupt> => {
      if (!lookup(r.outPath)) return Effect.fail(notValid(r.outPath))
      const key = Realisation.printDrvOutput(r.id)
      const old = realisations.get(key)
      const conflict = Realisation.conflict(old, r, (p) => StorePath.print(p, storeDir))
      if (conflict !== undefined) return Effect.fail(new StoreCorrupt({ store: uri, reason: conflict }))
      for (const dep of r.dependentRealisations.keys()) {
        if (!realisations.has(dep)) return Effect.fail(new StoreCorrupt({ store: uri, reason: `unable to register the derivation '${key}' as it depends on the non existent '${dep}'` }))
      }
      realisations.set(key, Realisation.make(r.id, r.outPath, { signatures: [...(old?.signatures ?? []), ...r.signatures], dependentRealisations: r.dependentRealisations }))
      return Effect.void
    })
  })

  const logs = new Map<string, Array<Uint8Array>>()
  const buildHost: BuildHostApi = {
    storeDir,
    realStoreDir: storeDir,
    addTempRoots: () => Effect.void, // nothing collects a memory store behind a program's back
    openLog: (drvPath) => Effect.sync(() => {
      const chunks: Array<Uint8Array> = []
      logs.set(drvPath, chunks)
      return { write: (chunk: Uint8Array) => { chunks.push(chunk.slice()) } }
    }),
    // Registered in the order given (outputs referring to each other come in dependency order).
    registerBuilt: (built) => Effect.forEach(built, ({ info, output }) => write.addToStore(info, output.nar), { discard: true })
  }
  const buildLogs: BuildLogsApi = {
    readLog: (drvPath) => Effect.sync(() => Option.map(Option.fromNullishOr(logs.get(drvPath)), (chunks) => Stream.fromIterable(chunks)))
  }

  return { read, write, buildHost, logs: buildLogs }
}

/** What the in-memory store provides. */
export type MemoryStoreServices = StoreRead | StoreWrite | BuildHost | BuildLogs

/** The services of a store made with `make`. */
export const context = (store: MemoryStore): Context.Context<MemoryStoreServices> =>
  Context.make(StoreRead, store.read).pipe(
    Context.add(StoreWrite, store.write),
    Context.add(BuildHost, store.buildHost),
    Context.add(BuildLogs, store.logs))

/** A fresh in-memory store. */
export const layer = (options: MemoryStoreOptions = {}): Layer.Layer<MemoryStoreServices> =>
  Layer.effectContext(Effect.sync(() => context(make(options))))
