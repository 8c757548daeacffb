/**
 * Content-addressed and impure derivations in the scheduler, on the in-memory store with a fake
 * sandbox (no Nix, no bubblewrap: milliseconds): outputs moved to their content-addressed paths,
 * realisations recorded, dependents resolved, early cut-off counted in builds, substitution by
 * signed realisation (and not by an unsigned one), impure derivations rebuilt and refused as inputs
 * of pure ones. The same behaviour is compared with Nix in ca-nix.test.ts and impure-nix.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Result } from "effect"
import * as Derivation from "../../src/core/derivation/index.ts"
import type { BuiltDerivation } from "../../src/core/derivation/builder-api.ts"
import * as Realisation from "../../src/core/realisation.ts"
import * as Signature from "../../src/core/signature.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { addDerivationClosure } from "../../src/build/derivation-closure.ts"
import { layer as builderLayer } from "../../src/build/builder.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { StoreBuild, type BuildEvent, type BuildOptions } from "../../src/services/store-build.ts"
import { StoreRead } from "../../src/services/store-read.ts"
import { StoreWrite } from "../../src/services/store-write.ts"
import { makeFakeSandbox } from "../support/fake-sandbox.ts"

const mk = (name: string, attrs: Record<string, Derivation.Value> = {}) => Result.getOrThrow(Derivation.derivation({
  name, system: "x86_64-linux", builder: "/bin/sh", args: ["-c", "true"], ...attrs
}))
const ca = (name: string, attrs: Record<string, Derivation.Value> = {}) => mk(name, { __contentAddressed: true, ...attrs })

/** A memory store with the builder and a fake sandbox, around `program`. */
const withBuilder = <A, E>(program: (fake: Effect.Success<ReturnType<typeof makeFakeSandbox>>, store: MemoryStore.MemoryStore) => Effect.Effect<A, E, StoreRead | StoreWrite | StoreBuild>) =>
  Effect.gen(function*() {
    const fake = yield* makeFakeSandbox()
    const store = MemoryStore.make()
    const services = builderLayer.pipe(Layer.provide(fake.layer), Layer.provideMerge(Layer.succeedContext(MemoryStore.context(store))))
    return yield* program(fake, store).pipe(Effect.provide(services))
  })

const build = (roots: ReadonlyArray<BuiltDerivation>, options: BuildOptions = {}) => Effect.gen(function*() {
  const read = yield* StoreRead
  const drvPaths = yield* addDerivationClosure(yield* StoreWrite, read.storeDir, roots)
  return yield* (yield* StoreBuild).buildDerivations(drvPaths, options)
})

describe("content-addressed derivations in the scheduler (memory store, fake sandbox)", () => {
  it.effect("builds a chain through floating and deferred derivations, recording realisations", () =>
    withBuilder((fake) => Effect.gen(function*() {
      const a = ca("a")
      const b = ca("b", { a })
      const c = mk("c", { b })
      expect(c.derivation.outputs.get("out")!._tag).toBe("Deferred")
      const events: Array<BuildEvent> = []
      const [result] = yield* build([c], { onEvent: (e) => events.push(e) })
      expect(result!.status).toBe("built")
      expect(fake.record.started).toEqual(["a", "b", "c"])
      expect(events.filter((e) => e.type === "resolved").length).toBe(2)
      const read = yield* StoreRead
      const out = result!.outputs.out!
      const info = yield* read.queryPathInfo(out)
      expect(info.ca).toBeUndefined() // c was deferred: its resolved form is input-addressed
      // b's output is content-addressed and its realisation records it, with a's as a dependency
      // only if b's output refers to a's (the fake's output names its inputs, so it does).
      const bHash = Result.getOrThrow(Derivation.hashDerivationModulo(b.derivation, true, { lookup: (p) => p === a.drvPath ? a.derivation : undefined })).hashes.get("out")!
      const rb = yield* read.queryRealisation!({ drvHash: bHash, outputName: "out" })
      expect(Option.isSome(rb)).toBe(true)
      const bInfo = yield* read.queryPathInfo(Option.getOrThrow(rb).outPath)
      expect(bInfo.ca?._tag).toBe("Fixed")
      expect([...Option.getOrThrow(rb).dependentRealisations.values()].map(StorePath.baseName)).toEqual(bInfo.references.map(StorePath.baseName))
      // Building again does nothing.
      const again = yield* build([c])
      expect(again[0]!.status).toBe("already-valid")
      expect(fake.record.started.length).toBe(3)
    })))

  it.effect("early cut-off: a changed leaf with the same output rebuilds only the leaf", () =>
    withBuilder((fake) => Effect.gen(function*() {
      const chain = (variant: string) => {
        const a = ca("a", { variant })
        const b = ca("b", { a })
        return mk("c", { b })
      }
      const first = yield* build([chain("1")])
      expect(fake.record.started).toEqual(["a", "b", "c"])
      const second = yield* build([chain("2")])
      expect(fake.record.started).toEqual(["a", "b", "c", "a"])
      expect(second[0]!.outputs.out).toEqual(first[0]!.outputs.out)
    })))

  it.effect("substitutes by realisation signed by a trusted key, and builds when the signature is missing", () =>
    Effect.gen(function*() {
      const key = Signature.generateSecretKey("ca-test-1")
      const a = ca("a")
      const b = ca("b", { a })
      // Build into one store, then serve it (with signed realisations) to another.
      const source = MemoryStore.make()
      yield* withSource(source, [b])
      const signed = MemoryStore.make()
      for (const r of [...(yield* realisationsOf(source, [a, b]))]) {
        yield* signed.write.addToStore(yield* source.read.queryPathInfo(r.outPath), source.read.narFromPath(r.outPath))
        yield* signed.write.registerRealisation!(Realisation.sign(r, key))
      }
      yield* withBuilder((fake) => Effect.gen(function*() {
        const [result] = yield* build([b], { substituters: [signed.read], trustedKeys: [Signature.publicKeyOf(key)] })
        expect(result!.status).toBe("substituted")
        expect(fake.record.started).toEqual([])
      }))
      yield* withBuilder((fake) => Effect.gen(function*() {
        const events: Array<BuildEvent> = []
        const [result] = yield* build([b], { substituters: [signed.read], trustedKeys: [], onEvent: (e) => events.push(e) })
        expect(result!.status).toBe("built")
        expect(fake.record.started).toEqual(["a", "b"])
        expect(events.some((e) => e.type === "untrusted-substitute")).toBe(true)
      }))
    }))

  it.effect("impure derivations are built every time; a pure derivation may not depend on one", () =>
    withBuilder((fake) => Effect.gen(function*() {
      const i = mk("i", { __impure: true })
      yield* build([i])
      yield* build([i])
      expect(fake.record.started).toEqual(["i", "i"])
      const pure = mk("pure", { i })
      const exit = yield* Effect.exit(build([pure]))
      expect(exit._tag).toBe("Failure")
      expect(String(exit)).toMatch(/pure derivation '.*-pure\.drv' depends on impure derivation '.*-i\.drv'/)
      const fod = mk("fod", { i, outputHash: "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", outputHashMode: "flat" })
      const fodExit = yield* Effect.exit(build([fod]))
      // allowed as an input of a fixed-output derivation (the fake's output then fails the hash check)
      expect(String(fodExit)).toMatch(/hash mismatch in fixed-output derivation/)
    })))
})

/** Builds `roots` into `store` with a fake sandbox. */
const withSource = (store: MemoryStore.MemoryStore, roots: ReadonlyArray<BuiltDerivation>) => Effect.gen(function*() {
  const fake = yield* makeFakeSandbox()
  const services = builderLayer.pipe(Layer.provide(fake.layer), Layer.provideMerge(Layer.succeedContext(MemoryStore.context(store))))
  yield* build(roots).pipe(Effect.provide(services))
})

/** The realisations of the `out` outputs of these derivations in `store`. */
const realisationsOf = (store: MemoryStore.MemoryStore, drvs: ReadonlyArray<BuiltDerivation>) => Effect.gen(function*() {
  const byPath = new Map(drvs.map((d) => [d.drvPath, d.derivation]))
  const found: Array<Realisation.Realisation> = []
  for (const d of drvs) {
    const h = Result.getOrThrow(Derivation.hashDerivationModulo(d.derivation, true, { lookup: (p) => byPath.get(p) })).hashes.get("out")!
    found.push(Option.getOrThrow(yield* store.read.queryRealisation!({ drvHash: h, outputName: "out" })))
  }
  return found
})
