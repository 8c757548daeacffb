/**
 * From built outputs to registrable path infos, as Nix 2.8's `registerOutputs` does it: each
 * output's NAR hash and size, its references (the hash parts of the input closure and of the
 * derivation's own outputs that occur in it), the fixed-output hash check, and an order in which
 * outputs that refer to each other can be registered (a cycle between outputs is an error).
 */
import { Effect, Stream } from "effect"
import * as ContentAddress from "../core/content-address.ts"
import type * as Derivation from "../core/derivation/index.ts"
import * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import type { BuiltOutput, BuiltPath } from "../services/build-host.ts"
import { topoSortInfos } from "../services/closure.ts"
import { sortReferences, type PathInfo } from "../services/path-info.ts"
import { BuildFailed, OutputHashMismatch, type BuildError } from "../services/store-build.ts"
import type { StoreIoError } from "../services/store-errors.ts"
import { narDigester, type NarDigestResult } from "../services/write-helpers.ts"

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

/** One pass over an output's NAR: its hash and size, the references found, and the content hash. */
const digestOf = (
  output: BuiltOutput,
  method: "flat" | "recursive",
  algorithm: Hash.HashAlgorithm,
  candidates: ReadonlyArray<StorePath.StorePath>
): Effect.Effect<NarDigestResult, StoreIoError> => Effect.suspend(() => {
  const digester = narDigester(method, algorithm, candidates)
  return Stream.runForEach(output.nar, (chunk) => Effect.sync(() => digester.push(chunk))).pipe(Effect.map(() => digester.result()))
})

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
      if (fixed?.method === "flat" && (!digest.regularFile || digest.executable)) {
        return yield* failed(drvPath, `output path '${printed}' should be a non-executable regular file since recursive hashing is not enabled (outputHashMode=flat)`)
      }
      let ca: ContentAddress.ContentAddress | undefined
      if (fixed) {
        if (!Hash.equals(fixed.hash, digest.caHash)) {
          return yield* new OutputHashMismatch({
            drvPath, output: name, specified: Hash.encode(fixed.hash, "sri"), got: Hash.encode(digest.caHash, "sri")
          })
        }
        if (digest.references.length > 0) return yield* failed(drvPath, "illegal path references in fixed-output derivation")
        ca = ContentAddress.fixed(fixed.method, digest.caHash)
      }
      infos.push({
        name,
        info: {
          path,
          narHash: digest.narHash,
          narSize: digest.size,
          references: sortReferences(digest.references),
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
