/**
 * From built outputs to registrable path infos, as Nix 2.8's `registerOutputs` does it: each
 * output's NAR hash and size, its references (the hash parts of the input closure and of the
 * derivation's own outputs that occur in it), the fixed-output hash check, and an order in which
 * outputs that refer to each other can be registered (a cycle between outputs is an error).
 */
import { Effect } from "effect"
import * as ContentAddress from "../core/content-address.ts"
import type * as Derivation from "../core/derivation/index.ts"
import * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import type { BuiltOutput, BuiltPath } from "../services/build-host.ts"
import { checkNar, type NarCheckResult } from "../nar/check.ts"
import { topoSortInfos } from "../services/closure.ts"
import { sortReferences, type PathInfo } from "../services/path-info.ts"
import { BuildFailed, OutputHashMismatch, type BuildError } from "../services/store-build.ts"
import { StoreIoError } from "../services/store-errors.ts"

export interface OutputsToRegister {
  readonly drvPath: StorePath.StorePath
  readonly drv: Derivation.Derivation
  readonly storeDir: string
  /** Output name → store path. */
  readonly outputs: Readonly<Record<string, StorePath.StorePath>>
  /** Printed store path → the output as the sandbox left it. */
  readonly built: Readonly<Record<string, BuiltOutput>>
  /** The input closure: what outputs may refer to, besides themselves. */
  readonly inputClosure: ReadonlyArray<StorePath.StorePath>
}

/**
 * One pass over an output's NAR (check.ts): its structure, hash and size, the references found,
 * and the content hash. The NAR comes from the Sandbox service, so its structure is checked too.
 */
const digestOf = (
  output: BuiltOutput,
  method: "flat" | "recursive",
  algorithm: Hash.HashAlgorithm,
  candidates: ReadonlyArray<StorePath.StorePath>
): Effect.Effect<NarCheckResult, StoreIoError> =>
  checkNar(output.nar, { contentHash: { method, algorithm }, references: candidates.map((c) => c.hashPart) }).pipe(
    Effect.mapError((e) => e._tag === "StoreIoError" ? e : new StoreIoError({ store: "build", operation: "read a built output", reason: e.message })))

const failed = (drvPath: string, reason: string) => new BuildFailed({ drvPath, reason, logTail: "" })

/** Orders outputs so each comes after the outputs it refers to; a cycle between outputs fails as Nix reports it. */
const orderOutputs = (drvPath: string, infos: ReadonlyArray<{ readonly name: string; readonly info: PathInfo }>) => {
  const nameOf = new Map(infos.map((o) => [StorePath.baseName(o.info.path), o.name]))
  const baseName = (path: string) => path.slice(path.lastIndexOf("/") + 1)
  return Effect.mapError(Effect.fromResult(topoSortInfos(infos.map((o) => o.info))), (cycle) => failed(drvPath,
    `cycle detected in the references of output '${nameOf.get(baseName(cycle.path))}' from output '${nameOf.get(baseName(cycle.referrer))}'`))
}

/** Hashes, scans and checks every output; gives them in an order they can be registered in. */
export const outputInfos = (outputs: OutputsToRegister): Effect.Effect<ReadonlyArray<BuiltPath>, BuildError> =>
  Effect.gen(function*() {
    const { drv, storeDir } = outputs
    const drvPath = StorePath.print(outputs.drvPath, storeDir)
    const candidates = [...outputs.inputClosure, ...Object.values(outputs.outputs)]
    const infos: Array<{ name: string; info: PathInfo }> = []
    for (const [name, path] of Object.entries(outputs.outputs)) {
      const printed = StorePath.print(path, storeDir)
      const built = outputs.built[printed]
      if (built === undefined) return yield* failed(drvPath, `builder for '${drvPath}' failed to produce output path '${printed}'`)
      const output = drv.outputs.get(name)
      const fixed = output?._tag === "Fixed" ? output : undefined
      // An output the NAR format cannot hold (a FIFO, a socket) fails the build, as in Nix.
      const digest = yield* digestOf(built, fixed?.method ?? "recursive", fixed?.hash.algorithm ?? "sha256", candidates).pipe(
        Effect.mapError((e) => failed(drvPath, `output '${printed}': ${e.reason}`)))
      if (fixed?.method === "flat" && digest.root !== "regular") {
        return yield* failed(drvPath, `output path '${printed}' should be a non-executable regular file since recursive hashing is not enabled (outputHashMode=flat)`)
      }
      const found = new Set(digest.references)
      const references = candidates.filter((c) => found.has(c.hashPart))
      let ca: ContentAddress.ContentAddress | undefined
      if (fixed) {
        const caHash = digest.contentHash!
        if (!Hash.equals(fixed.hash, caHash)) {
          return yield* new OutputHashMismatch({
            drvPath, output: name, specified: Hash.encode(fixed.hash, "sri"), got: Hash.encode(caHash, "sri")
          })
        }
        if (references.length > 0) return yield* failed(drvPath, "illegal path references in fixed-output derivation")
        ca = ContentAddress.fixed(fixed.method, caHash)
      }
      infos.push({
        name,
        info: {
          path,
          narHash: digest.narHash,
          narSize: digest.narSize,
          references: sortReferences(references),
          deriver: outputs.drvPath,
          signatures: [],
          ca,
          ultimate: true
        }
      })
    }
    const ordered = yield* orderOutputs(drvPath, infos)
    return ordered.map((info) => ({ info, output: outputs.built[StorePath.print(info.path, storeDir)]! }))
  })
