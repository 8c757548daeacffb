/**
 * The scheduler on the in-memory store with a fake sandbox: no bubblewrap, no disk, milliseconds a
 * test. Dependency order, --max-jobs (observed concurrency), --keep-going, substitution before
 * building (trusted and untrusted signatures), failures stopping their dependents, and
 * interruption running the builds' finalizers. The real sandbox is tested in the other files here.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Result, Stream } from "effect"
import * as Derivation from "../../src/core/derivation/index.ts"
import type { BuiltDerivation } from "../../src/core/derivation/builder-api.ts"
import * as Signature from "../../src/core/signature.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import * as Hash from "../../src/core/hash.ts"
import { addDerivationClosure } from "../../src/build/derivation-closure.ts"
import { layer as builderLayer } from "../../src/build/builder.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { BuildLogs } from "../../src/services/build-logs.ts"
import { fingerprint, type PathInfo } from "../../src/core/path-info.ts"
import { Sandbox } from "../../src/services/sandbox.ts"
import { StoreBuild, type BuildEvent, type BuildOptions } from "../../src/services/store-build.ts"
import { StoreRead } from "../../src/services/store-read.ts"
import { StoreWrite } from "../../src/services/store-write.ts"
import { fakeOutput, makeFakeSandbox, type FakeSandboxOptions } from "../support/fake-sandbox.ts"

const drv = (name: string, inputs: ReadonlyArray<BuiltDerivation> = []) => Result.getOrThrow(Derivation.derivation({
  name, system: "x86_64-linux", builder: "/bin/sh",
  args: ["-c", "true"],
  ...Object.fromEntries(inputs.map((input, i) => [`input${i}`, input.outputs.out!]))
}))

/** A store with the builder and a fake sandbox; runs `program` with StoreRead, StoreWrite and StoreBuild. */
const withBuilder = <A, E>(options: FakeSandboxOptions, program: (fake: Effect.Success<ReturnType<typeof makeFakeSandbox>>) => Effect.Effect<A, E, StoreRead | StoreWrite | StoreBuild | BuildLogs>) =>
  Effect.gen(function*() {
    const fake = yield* makeFakeSandbox(options)
    const store = MemoryStore.layer()
    const services = builderLayer.pipe(Layer.provide(fake.layer), Layer.provideMerge(store))
    return yield* program(fake).pipe(Effect.provide(services))
  })

const build = (roots: ReadonlyArray<BuiltDerivation>, options: BuildOptions = {}) => Effect.gen(function*() {
  const read = yield* StoreRead
  const drvPaths = yield* addDerivationClosure(yield* StoreWrite, read.storeDir, roots)
  return yield* (yield* StoreBuild).buildDerivations(drvPaths, options)
})

const outPath = (d: BuiltDerivation) => Result.getOrThrow(StorePath.parse(d.outputPaths.out!))

describe("realise on the in-memory store with a fake sandbox", () => {
  it.effect("builds a diamond in dependency order, each build seeing its inputs valid, outputs registered with references", () =>
    withBuilder({}, (fake) => Effect.gen(function*() {
      const a = drv("a")
      const b = drv("b", [a])
      const c = drv("c", [a])
      const d = drv("d", [b, c])
      const events: Array<BuildEvent> = []
      const results = yield* build([d], { maxJobs: 4, onEvent: (e) => events.push(e) })
      expect(results.map((r) => r.status)).toEqual(["built"])
      expect(fake.record.missingInputs).toEqual([])
      const ended = fake.record.ended
      expect(fake.record.started.indexOf("d")).toBeGreaterThan(Math.max(ended.indexOf("b"), ended.indexOf("c")))
      expect(Math.min(fake.record.started.indexOf("b"), fake.record.started.indexOf("c"))).toBeGreaterThan(ended.indexOf("a"))
      expect(events[0]).toMatchObject({ type: "plan" })
      expect(events.filter((e) => e.type === "built").length).toBe(4)
      const read = yield* StoreRead
      const info = yield* read.queryPathInfo(outPath(d))
      expect(StorePath.baseName(info.deriver!)).toBe(StorePath.baseName(Result.getOrThrow(StorePath.parse(d.drvPath))))
      expect(info.ultimate).toBe(true)
      // the sandbox saw the input closure, and the output names it, so those are its references
      const closure = [outPath(a), outPath(b), outPath(c)]
      expect(info.references.map(StorePath.baseName).sort()).toEqual(closure.map(StorePath.baseName).sort())
      const nar = Buffer.concat([...yield* Stream.runCollect(read.narFromPath(outPath(d)))])
      expect(nar.toString()).toContain(fakeOutput({ drvName: "d", inputPaths: closure }))
      // the log went to the host
      const log = yield* (yield* BuildLogs).readLog(d.drvPath)
      expect(log._tag).toBe("Some")
      // building again does nothing
      const again = yield* build([d])
      expect(again.map((r) => r.status)).toEqual(["already-valid"])
      expect(fake.record.started.length).toBe(4)
    })))

  it.effect("runs at most --max-jobs builds at once, and that many do run at once", () => Effect.gen(function*() {
    for (const maxJobs of [1, 3]) {
      const roots = Array.from({ length: 7 }, (_, i) => drv(`independent-${i}`))
      yield* withBuilder({ gate: maxJobs }, (fake) => Effect.gen(function*() {
        const results = yield* build(roots, { maxJobs })
        expect(results.every((r) => r.status === "built")).toBe(true)
        expect(fake.record.maxRunning).toBe(maxJobs)
      }))
    }
  }))

  it.effect("a failure stops its dependents; --keep-going finishes what does not depend on it", () => Effect.gen(function*() {
    const bad = drv("bad")
    const dependent = drv("dependent", [bad])
    const other = drv("other")
    const afterOther = drv("after-other", [other])
    for (const keepGoing of [false, true]) {
      yield* withBuilder({ failing: ["bad"] }, (fake) => Effect.gen(function*() {
        const events: Array<BuildEvent> = []
        const exit = yield* Effect.exit(build([dependent, afterOther], { keepGoing, maxJobs: 1, onEvent: (e) => events.push(e) }))
        expect(Exit.isFailure(exit)).toBe(true)
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        expect(error?._tag === "Fail" && error.error._tag).toBe("BuildFailed")
        expect(error?._tag === "Fail" && (error.error as { drvPath: string }).drvPath).toBe(bad.drvPath)
        expect(fake.record.started).not.toContain("dependent")
        // the failure is reported once, where it happened
        expect(events.filter((e) => e.type === "failed").map((e) => "drvPath" in e && e.drvPath)).toEqual([bad.drvPath])
        const read = yield* StoreRead
        expect(yield* read.isValidPath(outPath(dependent))).toBe(false)
        if (keepGoing) {
          expect(fake.record.ended).toEqual(expect.arrayContaining(["other", "after-other"]))
          expect(yield* read.isValidPath(outPath(afterOther))).toBe(true)
        }
      }))
    }
  }))

  it.effect("takes outputs from a substituter signed by a trusted key instead of building; an untrusted one is passed over", () => Effect.gen(function*() {
    const trusted = Signature.generateSecretKey("cache-1")
    const stranger = Signature.generateSecretKey("stranger-1")
    const leaf = drv("leaf")
    const top = drv("top", [leaf])
    // A cache holding leaf's output, signed by `key`.
    const cacheWith = (key: Signature.SecretKey) => Effect.gen(function*() {
      const cache = MemoryStore.make()
      const nar = Result.getOrThrow(Tree.toNar(Tree.regular("from the cache\n")))
      const unsigned: PathInfo = { path: outPath(leaf), narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: [] }
      const info = { ...unsigned, signatures: [Signature.signDetached(key, fingerprint(unsigned, cache.read.storeDir))] }
      yield* cache.write.addToStore(info, Stream.make(nar))
      return cache.read
    })
    yield* withBuilder({}, (fake) => Effect.gen(function*() {
      const events: Array<BuildEvent> = []
      const results = yield* build([top], {
        substituters: [yield* cacheWith(trusted)], trustedKeys: [Signature.publicKeyOf(trusted)], onEvent: (e) => events.push(e)
      })
      expect(results.map((r) => r.status)).toEqual(["built"])
      expect(fake.record.started).toEqual(["top"])
      expect(events.some((e) => e.type === "substituted" && e.drvPath === leaf.drvPath)).toBe(true)
      const leafNar = Buffer.concat([...yield* Stream.runCollect((yield* StoreRead).narFromPath(outPath(leaf)))])
      expect(leafNar.toString()).toContain("from the cache")
    }))
    yield* withBuilder({}, (fake) => Effect.gen(function*() {
      yield* build([top], { substituters: [yield* cacheWith(stranger)], trustedKeys: [Signature.publicKeyOf(trusted)] })
      expect(fake.record.started).toEqual(["leaf", "top"])
    }))
  }))

  it.effect("interrupting a realisation closes the running builds' scopes and registers nothing", () =>
    withBuilder({ hanging: ["slow"] }, (fake) => Effect.gen(function*() {
      const slow = drv("slow")
      const fiber = yield* Effect.forkChild(build([drv("after-slow", [slow])]))
      yield* Deferred.await(fake.record.hangingStarted)
      yield* Fiber.interrupt(fiber)
      expect(fake.record.released).toEqual(["slow"])
      expect(fake.record.running).toBe(0)
      expect(yield* (yield* StoreRead).isValidPath(outPath(slow))).toBe(false)
    })))
})

describe("StoreBuild comes only with a BuildHost", () => {
  it("a read-only store cannot be given the builder (compile-time)", () => {
    const readOnly = Layer.succeedContext(Context.make(StoreRead, MemoryStore.make().read))
    const sandbox = Layer.succeed(Sandbox, { systems: [], run: () => Effect.die("not run") })
    const building: Layer.Layer<StoreBuild> = builderLayer.pipe(Layer.provide(sandbox), Layer.provide(MemoryStore.layer()))
    // @ts-expect-error the builder needs StoreWrite and BuildHost, which a read-only store does not provide
    const notBuilding: Layer.Layer<StoreBuild> = builderLayer.pipe(Layer.provide(sandbox), Layer.provide(readOnly))
    expect([building, notBuilding].length).toBe(2)
  })
})
