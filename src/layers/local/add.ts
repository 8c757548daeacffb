/**
 * Adding a path to the local store, crash-safe and safe against concurrent adders:
 *
 * 1. the NAR is validated, hashed and restored under a temporary name in the store dir;
 * 2. the tree is canonicalised and the file system flushed (one syncfs, not an fsync per file);
 * 3. in one write transaction (BEGIN IMMEDIATE, which also serialises other processes): if another
 *    adder won the race the temporary copy is dropped; otherwise leftover garbage at the final
 *    name is moved aside, the temporary tree is renamed into place and the path registered.
 *
 * A crash before the commit leaves at most a temporary tree or unregistered contents, which the
 * next open (recovery.ts) or the next add of the same path removes; a valid row always has its
 * contents.
 */
import { Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { join } from "node:path"
import * as StorePath from "../../core/store-path.ts"
import { NarIoError, restoreNar, TargetExists } from "../../nar/index.ts"
import { PathNotValid, StoreIoError } from "../../services/errors.ts"
import type { PathInfo } from "../../services/path-info.ts"
import type { StoreError } from "../../services/store-error.ts"
import { verifiedNar } from "../../services/verified-nar.ts"
import { canonicalise } from "./canonicalise.ts"
import type { StoreDatabase } from "./database.ts"
import { removeTree, rename, syncFileSystem, trySync } from "./fs-ops.ts"
import { tempPrefix, type LocalStoreLayout } from "./layout.ts"
import { addTempRoot } from "./temp-roots.ts"

export interface AddContext {
  readonly uri: string
  readonly layout: LocalStoreLayout
  readonly db: StoreDatabase
  /** Derivation outputs to record when a `.drv` is registered (path → output name → output path). */
  readonly derivationOutputsOf?: (info: PathInfo, realPath: string) => Readonly<Record<string, string>> | undefined
}

export const tempName = (layout: LocalStoreLayout, tag: string) =>
  join(layout.realStoreDir, `${tempPrefix}${process.pid}-${tag}-${randomBytes(6).toString("hex")}`)

/** Fails with PathNotValid if a reference (other than the path itself) is not valid yet. */
const checkReferences = (ctx: AddContext, info: PathInfo) =>
  trySync(ctx.uri, "check references", () =>
    info.references.find((r) => !StorePath.equals(r, info.path) && !ctx.db.isValid(r))
  ).pipe(Effect.flatMap((missing) => missing
    ? Effect.fail(new PathNotValid({ path: StorePath.print(missing, ctx.layout.storeDir), store: ctx.uri }))
    : Effect.void))

export const addFromNar = <E, R>(ctx: AddContext, info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, StoreError | E, R> =>
  Effect.gen(function*() {
    const valid = yield* trySync(ctx.uri, "query path", () => ctx.db.isValid(info.path))
    if (valid) return
    yield* checkReferences(ctx, info)
    const finalPath = join(ctx.layout.realStoreDir, StorePath.baseName(info.path))
    const temp = tempName(ctx.layout, "add")
    yield* Effect.acquireUseRelease(
      Effect.succeed(temp),
      (temp) => Effect.gen(function*() {
        yield* restoreNar(verifiedNar(info, ctx.layout.storeDir, nar), temp).pipe(
          Effect.mapError((e): StoreError | E => e instanceof NarIoError || e instanceof TargetExists
            ? new StoreIoError({ store: ctx.uri, operation: "write path", reason: e.message })
            : e))
        yield* trySync(ctx.uri, "canonicalise", () => canonicalise(temp))
        yield* syncFileSystem(ctx.uri, ctx.layout.realStoreDir)
        const outputs = ctx.derivationOutputsOf?.(info, temp)
        const garbage = yield* trySync(ctx.uri, "register path", () => ctx.db.immediate(() => {
          if (ctx.db.isValid(info.path)) return undefined // another adder won: ours is dropped on release
          let garbage: string | undefined
          if (existsSync(finalPath)) { garbage = tempName(ctx.layout, "trash"); rename(finalPath, garbage) }
          rename(temp, finalPath)
          addTempRoot(ctx.layout, StorePath.print(info.path, ctx.layout.storeDir))
          ctx.db.register([info], Math.floor(Date.now() / 1000),
            outputs ? new Map([[StorePath.print(info.path, ctx.layout.storeDir), outputs]]) : undefined)
          return garbage
        }))
        if (garbage) yield* trySync(ctx.uri, "remove garbage", () => removeTree(garbage))
      }),
      (temp) => Effect.sync(() => { try { removeTree(temp) } catch { /* recovery removes it on the next open */ } })
    )
  })
