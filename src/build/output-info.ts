/**
 * From built outputs to registrable path infos, as Nix 2.8's `registerOutputs` does it: each
 * output's references (the hash parts of the input closure and of the derivation's own outputs
 * that occur in it), an order in which outputs that refer to each other can be registered (a cycle
 * between outputs is an error), and then per output:
 *
 * - input-addressed: its NAR hash and size, at the path it was built at;
 * - fixed-output: the same, and the declared hash checked;
 * - floating content-addressed or impure: built at a temporary ("scratch") path, it is hashed
 *   modulo that path's hash part (self-references count as zeros plus their offsets), which gives
 *   its final content-addressed path; its NAR is then rewritten to that path (self-references and
 *   references to the derivation's other outputs included) and hashed again.
 */
import { Effect, Stream } from "effect"
import * as ContentAddress from "../core/content-address.ts"
import type * as Derivation from "../core/derivation/index.ts"
import * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import { NarDecoder, rewriteHashParts } from "../nar/index.ts"
import type { NarEvent } from "../nar/events.ts"
import { hashModulo } from "../nar/hash-modulo.ts"
import type { BuiltOutput, BuiltPath } from "../services/build-host.ts"
import { sortReferences, type PathInfo } from "../core/path-info.ts"
import { BuildFailed, OutputHashMismatch, type BuildError } from "../services/store-build.ts"
import { StoreIoError } from "../services/store-errors.ts"
import { checkNar, type NarCheckResult } from "../nar/check.ts"

export interface OutputToRegister {
  readonly name: string
  /** Where the sandbox built it: the final path, or for content-addressed outputs a scratch path. */
  readonly scratch: StorePath.StorePath
  readonly output: Derivation.DerivationOutput
}

export interface OutputsToRegister {
  readonly drvPath: StorePath.StorePath
  readonly drv: Derivation.Derivation
  readonly storeDir: string
  readonly outputs: ReadonlyArray<OutputToRegister>
  /** Printed scratch path → the output as the sandbox left it. */
  readonly built: Readonly<Record<string, BuiltOutput>>
  /** The input closure: what outputs may refer to, besides themselves. */
  readonly inputClosure: ReadonlyArray<StorePath.StorePath>
}

export interface RegisteredOutputs {
  /** In an order they can be registered in (an output after those it refers to). */
  readonly built: ReadonlyArray<BuiltPath>
  /** Output name → its final info. */
  readonly infos: ReadonlyMap<string, PathInfo>
  /**
   * A fixed-output hash mismatch: `built` then holds the output under the path of the hash it has
   * (Nix registers it there), and the build fails with this error once it is registered.
   */
  readonly mismatch?: OutputHashMismatch
}

/** What the builder needs of one pass over an output's NAR. */
interface Digest {
  readonly narHash: Hash.Hash
  readonly size: number
  readonly caHash: Hash.Hash
  readonly regularFile: boolean
  readonly executable: boolean
  readonly references: ReadonlyArray<StorePath.StorePath>
}

/**
 * One pass over an output's NAR (../nar/check.ts): its structure, hash and size, the references
 * found, and the content hash. The NAR comes from the Sandbox service, so its structure is checked too.
 */
const digestOf = (
  nar: Stream.Stream<Uint8Array, StoreIoError>,
  method: "flat" | "recursive",
  algorithm: Hash.HashAlgorithm,
  candidates: ReadonlyArray<StorePath.StorePath>
): Effect.Effect<Digest, StoreIoError> =>
  checkNar(nar, { contentHash: { method, algorithm }, references: candidates.map((c) => c.hashPart) }).pipe(
    Effect.mapError((e) => e._tag === "StoreIoError" ? e : new StoreIoError({ store: "build", operation: "read a built output", reason: e.message })),
    Effect.map((r: NarCheckResult): Digest => {
      const found = new Set(r.references)
      return {
        narHash: r.narHash, size: r.narSize, caHash: r.contentHash!,
        regularFile: r.root === "regular" || r.root === "executable", executable: r.root === "executable",
        references: candidates.filter((c) => found.has(c.hashPart))
      }
    }))

/** The content hash of an output modulo its own hash part: of the NAR, or (flat) of the single file's contents. */
const hashModuloOf = <E>(nar: Stream.Stream<Uint8Array, E>, method: "flat" | "recursive", algorithm: Hash.HashAlgorithm, modulus: string) =>
  Effect.suspend(() => {
    const h = hashModulo(algorithm, modulus)
    const decoder = method === "flat" ? new NarDecoder() : undefined
    const events: Array<NarEvent> = []
    return Stream.runForEach(nar, (chunk) => Effect.sync(() => {
      if (!decoder) return h.update(chunk)
      decoder.push(chunk, events)
      for (const event of events) if (event._tag === "Contents") h.update(event.bytes)
      events.length = 0
    })).pipe(Effect.map(() => h.digest()))
  })

const failed = (drvPath: string, reason: string) => new BuildFailed({ drvPath, reason, logTail: "" })

/** Output names, each after the outputs it refers to (Nix's topoSort); a cycle fails as Nix reports it. */
const topoSortOutputs = (
  drvPath: string,
  names: ReadonlyArray<string>,
  refersTo: (name: string) => ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<string>, BuildFailed> => {
  const order: Array<string> = []
  const state = new Map<string, "visiting" | "done">()
  for (const root of names) {
    if (state.has(root)) continue
    const stack: Array<{ name: string; parent: string | undefined; expanded: boolean }> = [{ name: root, parent: undefined, expanded: false }]
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!
      if (top.expanded) { stack.pop(); state.set(top.name, "done"); order.push(top.name); continue }
      if (state.get(top.name) === "done") { stack.pop(); continue }
      if (state.get(top.name) === "visiting") {
        return Effect.fail(failed(drvPath, `cycle detected in build of '${drvPath}' in the references of output '${top.name}' from output '${top.parent}'`))
      }
      state.set(top.name, "visiting")
      top.expanded = true
      for (const dep of refersTo(top.name)) if (state.get(dep) !== "done") stack.push({ name: dep, parent: top.name, expanded: false })
    }
  }
  return Effect.succeed(order)
}

const rewriteError = (e: unknown) => new StoreIoError({ store: "build", operation: "rewrite output", reason: e instanceof Error ? e.message : String(e) })

/** Hashes, scans, checks and (content-addressed) rewrites every output; see the module comment. */
export const outputInfos = (outputs: OutputsToRegister): Effect.Effect<RegisteredOutputs, BuildError | StoreIoError> =>
  Effect.gen(function*() {
    const { drv, storeDir } = outputs
    const drvPath = StorePath.print(outputs.drvPath, storeDir)
    const scratchOf = new Map(outputs.outputs.map((o) => [o.name, o.scratch]))
    const candidates = [...outputs.inputClosure, ...outputs.outputs.map((o) => o.scratch)]
    const digests = new Map<string, { readonly digest: Digest; readonly built: BuiltOutput }>()
    for (const o of outputs.outputs) {
      const printed = StorePath.print(o.scratch, storeDir)
      const built = outputs.built[printed]
      if (built === undefined) return yield* failed(drvPath, `builder for '${drvPath}' failed to produce output path for output '${o.name}' at '${printed}'`)
      const fixed = o.output._tag === "Fixed" ? o.output : undefined
      // An output the NAR format cannot hold (a FIFO, a socket) fails the build, as in Nix.
      const digest = yield* digestOf(built.nar, fixed?.method ?? "recursive", fixed?.hash.algorithm ?? "sha256", candidates).pipe(
        Effect.mapError((e) => failed(drvPath, `output '${printed}': ${e.reason}`)))
      digests.set(o.name, { built, digest })
    }
    const nameOfScratch = new Map(outputs.outputs.map((o) => [StorePath.baseName(o.scratch), o.name]))
    const order = yield* topoSortOutputs(drvPath, outputs.outputs.map((o) => o.name), (name) =>
      digests.get(name)!.digest.references.flatMap((r) => {
        const other = nameOfScratch.get(StorePath.baseName(r))
        return other !== undefined && other !== name ? [other] : []
      }))

    const rewrites = new Map<string, string>() // scratch hash part → final hash part
    const infos = new Map<string, PathInfo>()
    const built: Array<BuiltPath> = []
    for (const name of order) {
      const o = outputs.outputs.find((x) => x.name === name)!
      const { digest, built: output } = digests.get(name)!
      const scratch = scratchOf.get(name)!
      const printed = StorePath.print(scratch, storeDir)
      const self = digest.references.some((r) => StorePath.equals(r, scratch))
      const others = digest.references.filter((r) => !StorePath.equals(r, scratch)).map((r) => {
        const to = rewrites.get(r.hashPart)
        return to === undefined ? r : { hashPart: to, name: r.name }
      })
      const base = { deriver: outputs.drvPath, signatures: [] as ReadonlyArray<string>, ultimate: true }
      if (o.output._tag === "InputAddressed" || o.output._tag === "Fixed") {
        const fixed = o.output._tag === "Fixed" ? o.output : undefined
        let ca: ContentAddress.ContentAddress | undefined
        if (fixed) {
          if (fixed.method === "flat" && (!digest.regularFile || digest.executable)) {
            return yield* failed(drvPath, `output path '${printed}' should be a non-executable regular file since recursive hashing is not enabled (outputHashMode=flat)`)
          }
          if (!Hash.equals(fixed.hash, digest.caHash)) {
            const mismatch = new OutputHashMismatch({ drvPath, output: name, specified: Hash.encode(fixed.hash, "sri"), got: Hash.encode(digest.caHash, "sri") })
            if (digest.references.length > 0) return yield* mismatch
            // As Nix: what was built is registered under the path of the hash it has, then the build fails.
            const actual = StorePath.makeFixedOutput(fixed.method, digest.caHash, scratch.name, { storeDir })
            const info: PathInfo = {
              ...base, path: actual, narHash: digest.narHash, narSize: digest.size, ca: ContentAddress.fixed(fixed.method, digest.caHash), references: []
            }
            return { built: [{ info, output: { nar: output.nar } }], infos: new Map(), mismatch }
          }
          if (digest.references.length > 0) return yield* failed(drvPath, "illegal path references in fixed-output derivation")
          ca = ContentAddress.fixed(fixed.method, digest.caHash)
        }
        const info: PathInfo = {
          ...base, path: scratch, narHash: digest.narHash, narSize: digest.size, ca,
          references: sortReferences(self ? [...others, scratch] : others)
        }
        infos.set(name, info)
        built.push({ info, output })
        continue
      }
      if (o.output._tag === "Deferred") return yield* failed(drvPath, `output '${name}' is deferred: the derivation must be resolved before it is built`)
      // Floating content-addressed or impure: to the final, content-addressed path.
      const { method, algorithm } = o.output
      if (method === "flat" && (!digest.regularFile || digest.executable)) {
        return yield* failed(drvPath, `output path '${printed}' should be a non-executable regular file since recursive hashing is not enabled (outputHashMode=flat)`)
      }
      const othersRewritten = rewrites.size > 0 ? Stream.mapError(rewriteHashParts(new Map(rewrites))(output.nar), rewriteError) : output.nar
      const caHash = yield* hashModuloOf(othersRewritten, method, algorithm, scratch.hashPart)
      if ((others.length > 0 || self) && !(method === "recursive" && algorithm === "sha256")) {
        return yield* failed(drvPath, `output '${name}' refers to store paths, which only a recursive sha256 content address can record (outputHashMode = "recursive", outputHashAlgo = "sha256")`)
      }
      const final = StorePath.makeFixedOutput(method, caHash, StorePath.outputPathName(drv.name, name), {
        references: others, hasSelfReference: self, storeDir
      })
      if (final.hashPart !== scratch.hashPart) rewrites.set(scratch.hashPart, final.hashPart)
      const finalNar = rewrites.size > 0 ? Stream.mapError(rewriteHashParts(new Map(rewrites))(output.nar), rewriteError) : output.nar
      const { narHash, size } = yield* digestOf(finalNar, "recursive", "sha256", [])
      const info: PathInfo = {
        ...base, path: final, narHash, narSize: size, ca: ContentAddress.fixed(method, caHash),
        references: sortReferences(self ? [...others, final] : others)
      }
      infos.set(name, info)
      built.push({ info, output: { nar: finalNar } })
    }
    return { built, infos }
  })
