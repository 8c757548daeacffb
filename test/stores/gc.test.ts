/** Garbage collection of the local store: roots (direct, indirect, temporary) keep their closures. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as StorePath from "../../src/core/store-path.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import { removeTree } from "../../src/layers/local/fs-ops.ts"
import { nix } from "../support/nix.ts"

const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-gc-"))),
  (dir) => Effect.sync(() => { removeTree(dir); rmSync(dir, { recursive: true, force: true }) })
)

describe("local store garbage collection", () => {
  it.effect("deletes exactly what no root reaches, referrers first, and Nix still finds the store consistent", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratch
    // populate in one session (its temporary roots end with it)
    const paths = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalStore.make({ root })
      const base = yield* store.write.addText("base", "base")
      const lib = yield* store.write.addText("lib", `uses ${StorePath.print(base.path)}`, [base.path])
      const app = yield* store.write.addText("app", `uses ${StorePath.print(lib.path)}`, [lib.path])
      const junk = yield* store.write.addText("junk", `uses ${StorePath.print(base.path)}`, [base.path])
      const junk2 = yield* store.write.addText("junk2", `uses ${StorePath.print(junk.path)}`, [junk.path])
      const viaResult = yield* store.write.addText("via-result", "kept by an indirect root")
      return { base, lib, app, junk, junk2, viaResult }
    }))
    const printed = (p: { path: StorePath.StorePath }) => StorePath.print(p.path)
    // a direct root to app (keeps lib and base), an indirect root (a `result` link outside the store)
    mkdirSync(join(root, "nix/var/nix/gcroots/auto"), { recursive: true })
    symlinkSync(printed(paths.app), join(root, "nix/var/nix/gcroots/app"))
    const resultLink = join(root, "result")
    symlinkSync(printed(paths.viaResult), resultLink)
    symlinkSync(resultLink, join(root, "nix/var/nix/gcroots/auto/result"))

    const store = yield* LocalStore.make({ root })
    const dry = yield* store.maintenance.collectGarbage({ dryRun: true })
    expect([...dry.deleted].sort()).toEqual([printed(paths.junk), printed(paths.junk2)].sort())
    expect(yield* store.read.isValidPath(paths.junk.path)).toBe(true)

    const result = yield* store.maintenance.collectGarbage()
    expect(result.deleted).toEqual([printed(paths.junk2), printed(paths.junk)]) // referrer first
    expect(result.bytesFreed).toBeGreaterThan(0)
    for (const kept of [paths.base, paths.lib, paths.app, paths.viaResult]) expect(yield* store.read.isValidPath(kept.path)).toBe(true)
    for (const gone of [paths.junk, paths.junk2]) expect(yield* store.read.isValidPath(gone.path)).toBe(false)
    expect((yield* store.maintenance.verify()).problems).toEqual([])
    nix("nix-store", ["--store", root, "--verify", "--check-contents"])

    // paths this process added are temporary roots while it runs
    const fresh = yield* store.write.addText("fresh", "added by a running process")
    expect((yield* store.maintenance.collectGarbage()).deleted).toEqual([])
    expect(yield* store.read.isValidPath(fresh.path)).toBe(true)
  })))

  it.effect("a path an add finds valid already is held as a temporary root too, so a collector running meanwhile keeps it (Nix's collector here)", () => Effect.scoped(Effect.gen(function*() {
    const root = yield* scratch
    const file = join(root, "input-file")
    writeFileSync(file, "added by addPath")
    // made valid in one session, whose temporary roots end with it
    const first = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalStore.make({ root })
      const text = yield* store.write.addText("by-add-text", "added by addText")
      const path = yield* store.write.addPath(file)
      const viaNar = yield* store.write.addText("by-add-to-store", "added by addToStore")
      const viaMultiple = yield* store.write.addText("by-add-multiple", "added by addMultiple")
      const narOf = (p: StorePath.StorePath) => Effect.map(Stream.runCollect(store.read.narFromPath(p)), (chunks) => Buffer.concat([...chunks]))
      return { text, path, viaNar, viaMultiple, nars: { viaNar: yield* narOf(viaNar.path), viaMultiple: yield* narOf(viaMultiple.path) } }
    }))
    const all = [first.text, first.path, first.viaNar, first.viaMultiple].map((p) => StorePath.print(p.path))
    const nixGc = () => nix("nix-store", ["--store", root, "--gc"])
    const valid = () => all.filter((p) => nix("nix-store", ["--store", root, "--check-validity", "--print-invalid", p]).trim() === "")
    // a second session adds each again: every add finds its path valid and adds nothing
    yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalStore.make({ root })
      yield* store.write.addText("by-add-text", "added by addText")
      yield* store.write.addPath(file)
      yield* store.write.addToStore(first.viaNar, Stream.make(new Uint8Array(first.nars.viaNar)))
      yield* store.write.addMultiple([{ info: first.viaMultiple, nar: Stream.make(new Uint8Array(first.nars.viaMultiple)) }])
      nixGc()
      expect(valid()).toEqual(all)
    }))
    // once that session has ended, nothing holds them
    nixGc()
    expect(valid()).toEqual([])
  })), 60_000)
})
