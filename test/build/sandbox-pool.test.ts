/**
 * Chroot trees and store directories reused from one build to the next (the sandbox layer's pool):
 * what a builder leaves in the chroot's store directory is gone for the next build, and no hard
 * link to an input's file outlives the build that needed it (one kept would hold the store file's
 * inode after the path is deleted, and the collector would leave its `.links` entry behind).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Exit } from "effect"
import { runInSandbox, type RunSpec } from "../../src/layers/sandbox/index.ts"
import { chrootPool } from "../../src/layers/sandbox/work-dirs.ts"
import { addBusybox } from "../support/busybox.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"

let scratch: string
let storeRoot: string
let bb: string
let input: string

beforeAll(() => {
  scratch = makeScratch("b3-sandbox-pool-")
  storeRoot = join(scratch, "root")
  bb = addBusybox(storeRoot)
  writeFileSync(join(scratch, "data"), "an input that is a regular file\n")
  input = nix("nix-store", ["--store", storeRoot, "--add", join(scratch, "data")])
})
afterAll(() => removeScratch(scratch))

const spec = (n: number, script: string): RunSpec => {
  const out = `/nix/store/${String(n).repeat(32).slice(0, 32)}-pool${n}`
  return {
    storeDir: "/nix/store",
    realStoreDir: join(storeRoot, "nix/store"),
    drvName: `pool${n}`,
    builder: `${bb}/bin/sh`,
    args: ["-c", `B=${bb}/bin/busybox\n${script}`],
    env: { out, name: `pool${n}`, system: "x86_64-linux", builder: `${bb}/bin/sh` },
    inputPaths: [bb, input],
    outputPaths: [out],
    fixedOutput: false,
    cores: 1
  }
}

const inputLinks = () => statSync(join(storeRoot, input)).nlink

describe("sandbox: the chroot pool", () => {
  it("a builder's leftovers in the store directory are not seen by the next build, and no link to an input file stays", async () => {
    const before = inputLinks()
    const linksBetween = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      yield* chrootPool
      const first = yield* Effect.exit(Effect.scoped(runInSandbox(spec(1, `$B cat ${input} > /dev/null && $B touch /nix/store/leftover && $B mkdir $out`))))
      expect(Exit.isSuccess(first)).toBe(true)
      const between = inputLinks()
      const second = yield* Effect.exit(Effect.scoped(runInSandbox(spec(2, `$B cat ${input} > /dev/null && [ ! -e /nix/store/leftover ] && $B mkdir $out`))))
      expect(Exit.isSuccess(second)).toBe(true)
      return between
    })))
    expect(linksBetween).toBe(before)
    expect(inputLinks()).toBe(before)
  }, 60_000)
})
