/**
 * Copying paths between any two stores, as `nix copy`: the closure (optionally), in dependency
 * order, several at once, skipping what the target already has, each NAR streamed from source to
 * target with its hash, size and structure checked on the way. With signature checking on, a
 * path must carry a valid signature by a trusted key, or be content-addressed with contents that
 * match its address.
 */
import { Effect } from "effect"
import * as ContentAddress from "../core/content-address.ts"
import * as Signature from "../core/signature.ts"
import * as StorePath from "../core/store-path.ts"
import { topoSortInfos } from "./closure.ts"
import { withContentAddressCheck } from "./verified-nar.ts"
import { fingerprint, type PathInfo } from "../core/path-info.ts"
import type { StoreError } from "./store-errors.ts"
import type { StoreReadApi } from "./store-read.ts"
import type { StoreWriteApi } from "./store-write.ts"

export type CopyEvent =
  | { readonly type: "plan"; readonly total: number; readonly skipped: number; readonly bytes: number }
  | { readonly type: "start"; readonly path: string; readonly narSize: number }
  | { readonly type: "done"; readonly path: string; readonly narSize: number }

export interface CopyOptions {
  /** Copy everything the paths refer to as well (default true). */
  readonly closure?: boolean
  /** NARs fetched at once (default 16; paths whose contents are ready together share one flush and transaction). */
  readonly concurrency?: number
  /** Path-info queries in flight at once while the closure is resolved (default 128). */
  readonly queryConcurrency?: number
  /** Require a trusted signature or a verified content address (default true). */
  readonly checkSigs?: boolean
  readonly trustedKeys?: ReadonlyArray<Signature.PublicKey>
  /** Sign copied paths with these keys in the target. */
  readonly signWith?: ReadonlyArray<Signature.SecretKey>
  readonly onEvent?: (event: CopyEvent) => void
}

export interface CopyResult {
  readonly copied: ReadonlyArray<StorePath.StorePath>
  readonly skipped: ReadonlyArray<StorePath.StorePath>
}

/** Whether the path is the one its content address, name and references give. */
export const pathMatchesContentAddress = (info: PathInfo, storeDir: string): boolean => {
  if (!info.ca) return false
  const self = StorePath.baseName(info.path)
  const others = info.references.filter((r) => StorePath.baseName(r) !== self)
  const computed = ContentAddress.storePath(info.ca, info.path.name, {
    references: others, hasSelfReference: others.length !== info.references.length, storeDir
  })
  return StorePath.equals(computed, info.path)
}

/**
 * Whether a path may be trusted: true when it is content-addressed (its contents must then be
 * checked against the address while they stream), false when a trusted key signed it, else a
 * SignatureError.
 */
export const checkSignature = (info: PathInfo, storeDir: string, trusted: ReadonlyArray<Signature.PublicKey>): Effect.Effect<boolean, Signature.SignatureError> => {
  if (pathMatchesContentAddress(info, storeDir)) return Effect.succeed(true) // verified against the contents while streaming
  const data = fingerprint(info, storeDir)
  if (info.signatures.some((sig) => Signature.verifyDetached(data, sig, trusted) !== undefined)) return Effect.succeed(false)
  const path = StorePath.print(info.path, storeDir)
  return Effect.fail(new Signature.SignatureError({
    path,
    reason: info.signatures.length === 0
      ? "it has no signatures and is not content-addressed (pass trusted keys, or turn checking off with --no-check-sigs)"
      : `none of its signatures (${info.signatures.map((s) => s.slice(0, s.indexOf(":"))).join(", ")}) is by a trusted key that matches its contents`
  }))
}

/**
 * The path infos of `paths` and, with `closure`, of everything they refer to, level by level: all
 * the paths found on one level are queried at once (up to `concurrency` in flight), so a closure of
 * depth d from a distant cache costs about d round trips plus its size over the concurrency.
 */
export const resolveInfos = (
  from: StoreReadApi,
  paths: ReadonlyArray<StorePath.StorePath>,
  options: { readonly closure?: boolean; readonly concurrency?: number } = {}
): Effect.Effect<ReadonlyArray<PathInfo>, StoreError> => Effect.gen(function*() {
  const seen = new Set<string>()
  const unseen = (p: StorePath.StorePath) => {
    const key = StorePath.baseName(p)
    if (seen.has(key)) return false
    seen.add(key)
    return true
  }
  let frontier = paths.filter(unseen)
  const out: Array<PathInfo> = []
  while (frontier.length > 0) {
    const infos = yield* Effect.forEach(frontier, (p) => from.queryPathInfo(p), { concurrency: options.concurrency ?? 128 })
    frontier = []
    for (const info of infos) {
      out.push(info)
      if (options.closure !== false) for (const ref of info.references) if (unseen(ref)) frontier.push(ref)
    }
  }
  return out
})

/**
 * One path for the target's `addMultiple`: its NAR stream is made when the target reads it (not
 * 10,000 of them up front for a large closure), by a getter on the class (no closure per path).
 */
class CopyItem {
  readonly info: PathInfo
  private readonly source: PathInfo
  private readonly from: StoreReadApi
  /** Content-addressed: the address is checked in the pass that checks the NAR hash (the target's, or the source's own). */
  private readonly ca: boolean
  constructor(info: PathInfo, source: PathInfo, from: StoreReadApi, ca: boolean) {
    this.info = info
    this.source = source
    this.from = from
    this.ca = ca
  }
  get nar() {
    const nar = this.from.narFromPath(this.source.path)
    return this.ca ? withContentAddressCheck(this.source, this.from.storeDir, nar) : nar
  }
}

/**
 * Copies `paths` (with their closures, by default) that the target lacks: their infos are resolved
 * from the source first (level by level, many queries in flight), then the target's `addMultiple`
 * takes them all: NARs are fetched several at once, and each path is registered in the target only
 * after the paths it refers to.
 */
export const copyPaths = (
  from: StoreReadApi,
  to: { readonly read: StoreReadApi; readonly write: StoreWriteApi },
  paths: ReadonlyArray<StorePath.StorePath>,
  options: CopyOptions = {}
): Effect.Effect<CopyResult, StoreError> => Effect.gen(function*() {
  const storeDir = from.storeDir
  const resolved = yield* resolveInfos(from, paths, {
    closure: options.closure !== false, ...(options.queryConcurrency !== undefined ? { concurrency: options.queryConcurrency } : {})
  })
  const present = new Set((yield* to.read.queryValidPaths(resolved.map((i) => i.path))).map(StorePath.baseName))
  const infos = yield* Effect.fromResult(topoSortInfos(resolved.filter((i) => !present.has(StorePath.baseName(i.path))), storeDir))
  const checkSigs = options.checkSigs ?? true
  const byCa = new Set<string>()
  if (checkSigs) {
    for (const info of infos) {
      if (yield* checkSignature(info, storeDir, options.trustedKeys ?? [])) byCa.add(StorePath.baseName(info.path))
    }
  }
  options.onEvent?.({ type: "plan", total: infos.length, skipped: present.size, bytes: infos.reduce((n, i) => n + i.narSize, 0) })
  const signWith = options.signWith ?? []
  const items = infos.map((info) => {
    const target: PathInfo = signWith.length === 0 ? info : {
      ...info, signatures: [...new Set([...info.signatures, ...signWith.map((k) => Signature.signDetached(k, fingerprint(info, storeDir)))])]
    }
    return new CopyItem(target, info, from, byCa.has(StorePath.baseName(info.path)))
  })
  yield* to.write.addMultiple(items, {
    concurrency: options.concurrency ?? 16,
    onStart: (info) => options.onEvent?.({ type: "start", path: StorePath.print(info.path, storeDir), narSize: info.narSize }),
    onAdded: (info) => options.onEvent?.({ type: "done", path: StorePath.print(info.path, storeDir), narSize: info.narSize })
  })
  return {
    copied: infos.map((i) => i.path),
    skipped: resolved.filter((i) => present.has(StorePath.baseName(i.path))).map((i) => i.path).sort(StorePath.compare)
  }
})
