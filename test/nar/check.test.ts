/**
 * The one-pass NAR checker (src/nar/check.ts): structure, hash, size, content address and
 * references in one pass, the same whatever the chunking; checks carried by a stream run in the
 * pass of whoever consumes it, and are never lost on the way.
 */
import { Effect, Exit, Result, Stream } from "effect"
import fc from "fast-check"
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import * as ContentAddress from "../../src/core/content-address.ts"
import * as Hash from "../../src/core/hash.ts"
import {
  checkedNar, checkNar, checkNarBytes, expectNar, isCheckedNar, NarChecker, narBytes, narEvents,
  type NarCheckOptions, type NarExpectation
} from "../../src/nar/check.ts"
import { decodeNarBytes } from "../../src/nar/decode.ts"
import { encodeNarBytes } from "../../src/nar/encode.ts"
import { BadNar, HashMismatch } from "../../src/nar/errors.ts"
import type * as Ev from "../../src/nar/events.ts"
import * as Tree from "../../src/nar/tree.ts"
import { malformed, sampleNar } from "./corpus.ts"
import { arbDump, arbNarEdits, chunked, mutateNar } from "./support.ts"

const narOf = (tree: Tree.Tree) => Result.getOrThrow(Tree.toNar(tree))
const sha = (algorithm: Hash.HashAlgorithm, bytes: Uint8Array) => Hash.make(algorithm, new Uint8Array(createHash(algorithm).update(bytes).digest()))
const arbCuts = fc.array(fc.nat(), { maxLength: 12 })

/** Runs the checker over chunks; the events re-encoded (comparable), the result or the error. */
const run = (chunks: ReadonlyArray<Uint8Array>, options: NarCheckOptions = {}) => {
  const checker = new NarChecker(options)
  const events: Array<Ev.NarEvent> = []
  let error: BadNar | HashMismatch | undefined
  for (const chunk of chunks) if ((error = checker.push(chunk, events))) break
  error ??= checker.end()
  return { error, result: error ? undefined : checker.result(), events }
}

const fileTree = Tree.regular("hello, world\n")
const exeTree = Tree.regular("#!/bin/sh\n", true)
const dirTree = Tree.directory({ a: Tree.regular("aaa"), b: Tree.directory({ c: Tree.symlink("../a") }), x: Tree.regular("x", true) })
const linkTree = Tree.symlink("/nix/store/somewhere")

describe("NarChecker: structure, hash and size", () => {
  const good: ReadonlyArray<[string, Uint8Array, string]> = [
    ["a regular file", narOf(fileTree), "regular"],
    ["an executable", narOf(exeTree), "executable"],
    ["a directory", narOf(dirTree), "directory"],
    ["a symlink", narOf(linkTree), "symlink"],
    ["an empty file", narOf(Tree.regular("")), "regular"],
    ["an empty directory", narOf(Tree.directory({})), "directory"],
    ["the sample NAR", sampleNar(), "directory"]
  ]
  it.each(good)("%s: accepted, with its sha256, size and root kind", (_, nar, root) => {
    const { error, result, events } = run([nar])
    expect(error).toBeUndefined()
    expect(Hash.equals(result!.narHash, sha("sha256", nar))).toBe(true)
    expect(result!.narSize).toBe(nar.length)
    expect(result!.root).toBe(root)
    expect(Buffer.from(encodeNarBytes(events).bytes).equals(nar)).toBe(true)
  })

  it.each(malformed.map((c) => [c.name, c] as const))("malformed: %s is a BadNar where the decoder says", (_, c) => {
    const { error } = run([c.bytes])
    expect(error).toBeInstanceOf(BadNar)
    expect((error as BadNar).offset).toBe(c.offset)
    expect((error as BadNar).reason).toMatch(c.reason)
  })

  it("an expected hash and size pass when right, and fail as HashMismatch naming the path when wrong", () => {
    const nar = narOf(dirTree)
    const right: NarExpectation = { path: "/nix/store/x-p", narHash: sha("sha256", nar), narSize: nar.length }
    expect(run([nar], { expect: [right] }).error).toBeUndefined()
    const badHash = run([nar], { expect: [{ ...right, narHash: sha("sha256", new Uint8Array(1)) }] }).error
    expect(badHash).toBeInstanceOf(HashMismatch)
    expect(badHash).toMatchObject({ path: "/nix/store/x-p", what: "NAR hash" })
    expect(run([nar], { expect: [{ ...right, narSize: nar.length + 8 }] }).error).toMatchObject({ what: "NAR size", actual: String(nar.length) })
    // too many bytes fail as soon as they arrive, before the rest is read
    const checker = new NarChecker({ expect: [{ ...right, narSize: 16 }] })
    expect(checker.push(nar.subarray(0, 24))).toMatchObject({ _tag: "HashMismatch", what: "NAR size", actual: "more than 16" })
    // a hash of another algorithm is computed too
    expect(run([nar], { expect: [{ path: "p", narHash: sha("sha512", nar) }] }).error).toBeUndefined()
  })

  it("every expectation is checked: one wrong among right ones fails", () => {
    const nar = narOf(fileTree)
    const right: NarExpectation = { path: "a", narHash: sha("sha256", nar), narSize: nar.length }
    expect(run([nar], { expect: [right, right] }).error).toBeUndefined()
    expect(run([nar], { expect: [right, { path: "b", narHash: sha("sha256", nar.subarray(1)) }] }).error).toMatchObject({ path: "b", what: "NAR hash" })
  })

  it("without validation (b3's own dumps) nothing is decoded, but the hash and size are the same", () => {
    const nar = narOf(dirTree)
    const checker = new NarChecker({ validate: false })
    expect(checker.decodes).toBe(false)
    const events: Array<Ev.NarEvent> = []
    expect(checker.push(nar, events)).toBeUndefined()
    expect(checker.end()).toBeUndefined()
    expect(events).toEqual([])
    expect(Hash.equals(checker.result().narHash, sha("sha256", nar))).toBe(true)
    // a flat content hash needs the file's bytes: then it decodes anyway
    expect(new NarChecker({ validate: false, contentHash: { method: "flat", algorithm: "sha1" } }).decodes).toBe(true)
  })
})

describe("NarChecker: content addresses", () => {
  const contents = new TextEncoder().encode("hello, world\n")
  const fileNar = narOf(fileTree)
  const dirNar = narOf(dirTree)
  const cases: ReadonlyArray<[string, Uint8Array, ContentAddress.ContentAddress]> = [
    ["fixed flat sha256 of a file", fileNar, ContentAddress.fixed("flat", sha("sha256", contents))],
    ["fixed flat sha1 of a file", fileNar, ContentAddress.fixed("flat", sha("sha1", contents))],
    ["fixed flat md5 of an executable", narOf(Tree.regular(contents, true)), ContentAddress.fixed("flat", sha("md5", contents))],
    ["text sha256 of a file", fileNar, ContentAddress.text(sha("sha256", contents))],
    ["fixed recursive sha256 of a tree (the NAR hash)", dirNar, ContentAddress.fixed("recursive", sha("sha256", dirNar))],
    ["fixed recursive sha1 of a tree", dirNar, ContentAddress.fixed("recursive", sha("sha1", dirNar))],
    ["fixed recursive sha512 of a file", fileNar, ContentAddress.fixed("recursive", sha("sha512", fileNar))]
  ]
  it.each(cases)("%s: accepted, and computed when asked", (_, nar, ca) => {
    expect(run([nar], { expect: [{ path: "p", ca }] }).error).toBeUndefined()
    const method = ca._tag === "Text" ? "text" : ca.method
    const { result } = run(chunked(nar, [3, 40, 41, 97]), { contentHash: { method, algorithm: ca.hash.algorithm } })
    expect(Hash.equals(result!.contentHash!, ca.hash)).toBe(true)
  })

  it.each(cases)("%s: a different hash is a content-address HashMismatch", (_, nar, ca) => {
    const wrong = { ...ca, hash: Hash.make(ca.hash.algorithm, new Uint8Array(ca.hash.bytes.length)) } as ContentAddress.ContentAddress
    expect(run([nar], { expect: [{ path: "p", ca: wrong }] }).error).toMatchObject({ _tag: "HashMismatch", what: "content address", expected: ContentAddress.print(wrong) })
  })

  it.each([["a directory", dirNar], ["a symlink", narOf(linkTree)]] as const)("flat and text need a single regular file: %s is refused", (_, nar) => {
    for (const ca of [ContentAddress.fixed("flat", sha("sha256", new Uint8Array(0))), ContentAddress.text(sha("sha256", new Uint8Array(0)))]) {
      expect(run([nar], { expect: [{ path: "p", ca }] }).error).toMatchObject({ what: "content address", actual: "not a single regular file" })
    }
  })

  it("a flat hash covers only the root file's contents, not files deeper in a tree", () => {
    // a directory holding one file with the contents: the flat hash must not match
    const nar = narOf(Tree.directory({ f: Tree.regular(contents) }))
    expect(run([nar], { expect: [{ path: "p", ca: ContentAddress.fixed("flat", sha("sha256", contents)) }] }).error).toMatchObject({ actual: "not a single regular file" })
  })
})

describe("NarChecker: references", () => {
  const parts = ["0123456789abcdfghijklmnpqrsvwxyz", "zyxwvsrqpnmlkjihgfdcba9876543210", "00000000000000000000000000000000"]
  const nar = narOf(Tree.directory({
    a: Tree.regular(`prefix /nix/store/${parts[0]}-foo suffix`),
    b: Tree.symlink(`/nix/store/${parts[1]}-bar`)
  }))

  it("finds the candidates that occur, wherever the chunks are cut (every cut point, and pairs of them)", () => {
    const expected = [parts[0], parts[1]].sort()
    for (let cut = 0; cut <= nar.length; cut++) {
      for (const second of [cut + 1, cut + 7, cut + 31, cut + 33]) {
        const { result } = run(chunked(nar, [cut, second]), { references: parts })
        expect([...result!.references].sort()).toEqual(expected)
      }
    }
  })

  it("one byte at a time", () => {
    const chunks = Array.from(nar, (b) => Uint8Array.of(b))
    expect([...run(chunks, { references: parts }).result!.references].sort()).toEqual([parts[0], parts[1]].sort())
  })

  it("no candidates, nothing found", () => {
    expect(run([nar]).result!.references).toEqual([])
  })
})

const arbNar = arbDump.map(narOf)

/** Mutations of a valid archive: flipped bytes, cuts, insertions, deletions, huge length fields. */
const arbMutated = fc.tuple(arbNar, arbNarEdits).map(([nar, edits]) => ({ original: nar, mutated: mutateNar(nar, edits) }))

describe("NarChecker: properties", () => {
  it("for random NARs and chunkings it agrees with decoding and hashing done separately", () => {
    fc.assert(fc.property(arbNar, arbCuts, fc.constantFrom<Hash.HashAlgorithm>("md5", "sha1", "sha256", "sha512"), (nar, cuts, algorithm) => {
      const decoded = decodeNarBytes(nar)
      const flat = decoded.events[0]!._tag === "File"
      const { error, result, events } = run(chunked(nar, cuts), { contentHash: { method: flat ? "flat" : "recursive", algorithm } })
      expect(error).toBeUndefined()
      expect(Buffer.from(encodeNarBytes(events).bytes).equals(Buffer.from(encodeNarBytes(decoded.events).bytes))).toBe(true)
      expect(Hash.equals(result!.narHash, sha("sha256", nar))).toBe(true)
      expect(result!.narSize).toBe(nar.length)
      const fileBytes = Buffer.concat(decoded.events.flatMap((e) => e._tag === "Contents" ? [e.bytes] : []))
      expect(Hash.equals(result!.contentHash!, sha(algorithm, flat ? fileBytes : nar))).toBe(true)
    }), { numRuns: 300 })
  })

  it("mutated NARs give a typed error (never a throw) against the original's expectation, or are the original", () => {
    fc.assert(fc.property(arbMutated, arbCuts, ({ original, mutated }, cuts) => {
      const expect1: NarExpectation = { path: "p", narHash: sha("sha256", original), narSize: original.length }
      const whole = run([mutated], { expect: [expect1], references: ["00000000000000000000000000000000"] })
      const pieces = run(chunked(mutated, cuts), { expect: [expect1], references: ["00000000000000000000000000000000"] })
      if (Buffer.from(mutated).equals(Buffer.from(original))) {
        expect(whole.error).toBeUndefined()
      } else {
        expect(whole.error === undefined).toBe(false)
        expect(["BadNar", "HashMismatch"]).toContain(whole.error!._tag)
      }
      // which problem is met first may depend on the chunking (too many bytes fail as soon as they arrive)
      expect(pieces.error === undefined).toBe(whole.error === undefined)
      if (pieces.error) expect(["BadNar", "HashMismatch"]).toContain(pieces.error._tag)
    }), { numRuns: 1000 })
  })

  it("checkNarBytes is the checker over one chunk", () => {
    fc.assert(fc.property(arbNar, (nar) => {
      const { result, error } = checkNarBytes(nar)
      expect(error).toBeUndefined()
      expect(result!.narSize).toBe(nar.length)
    }), { numRuns: 100 })
  })
})

describe("streams that carry their checks", () => {
  const nar = narOf(dirTree)
  const chunks = chunked(nar, [5, 64, 65, 200])
  const right: NarExpectation = { path: "/nix/store/a-src", narHash: sha("sha256", nar), narSize: nar.length }
  const wrong: NarExpectation = { path: "/nix/store/a-src", narHash: sha("sha256", nar.subarray(1)) }
  const source = (e: NarExpectation) => checkedNar(Effect.succeed({ bytes: Stream.fromIterable(chunks), expect: [e] }))
  const failure = <A, E>(effect: Effect.Effect<A, E>) => {
    const exit = Effect.runSyncExit(effect)
    return Exit.isFailure(exit) ? exit.cause : undefined
  }
  const errorOf = <A, E>(effect: Effect.Effect<A, E>) => {
    const exit = Effect.runSyncExit(Effect.flip(effect))
    return Exit.isSuccess(exit) ? exit.value : undefined
  }

  it("read as plain bytes, a checked NAR checks itself", () => {
    expect(isCheckedNar(source(right))).toBe(true)
    expect(Buffer.concat([...Effect.runSync(Stream.runCollect(source(right)))]).equals(nar)).toBe(true)
    expect(errorOf(Stream.runCollect(source(wrong)))).toMatchObject({ _tag: "HashMismatch", path: "/nix/store/a-src" })
  })

  it("a consumer's pass runs the carried checks as well as its own: a wrong carried hash fails it", () => {
    const own: NarExpectation = { path: "/nix/store/a-dst", narHash: right.narHash, narSize: right.narSize }
    expect(failure(Stream.runCollect(narEvents(source(right), { expect: [own] })))).toBeUndefined()
    expect(errorOf(Stream.runCollect(narEvents(source(wrong), { expect: [own] })))).toMatchObject({ path: "/nix/store/a-src", what: "NAR hash" })
    expect(errorOf(Stream.runCollect(narBytes(source(wrong), { expect: [own] })))).toMatchObject({ path: "/nix/store/a-src" })
    expect(errorOf(Stream.runCollect(narEvents(source(right), { expect: [{ ...own, narSize: 1 }] })))).toMatchObject({ path: "/nix/store/a-dst", what: "NAR size" })
  })

  it("an added expectation (a content address) is carried too, and checked in the consumer's pass", () => {
    const ca = ContentAddress.fixed("recursive", sha("sha1", nar))
    const withCa = expectNar(source(right), { path: "/nix/store/a-src", ca })
    expect(isCheckedNar(withCa)).toBe(true)
    expect(failure(Stream.runCollect(narEvents(withCa)))).toBeUndefined()
    const badCa = expectNar(source(right), { path: "/nix/store/a-src", ca: ContentAddress.fixed("recursive", sha("sha1", nar.subarray(1))) })
    expect(errorOf(Stream.runCollect(narEvents(badCa)))).toMatchObject({ what: "content address" })
    expect(errorOf(Stream.runCollect(badCa))).toMatchObject({ what: "content address" })
    // on a plain stream it makes a checked one
    const plain = expectNar(Stream.fromIterable(chunks), { path: "p", narSize: nar.length - 1 })
    expect(errorOf(Stream.runCollect(plain))).toMatchObject({ what: "NAR size" })
  })

  it("a checked NAR transformed on the way is no longer one: its checks still run when it is read", () => {
    const mapped = source(wrong).pipe(Stream.map((c) => c))
    expect(isCheckedNar(mapped)).toBe(false)
    expect(errorOf(Stream.runCollect(narEvents(mapped)))).toMatchObject({ _tag: "HashMismatch" })
  })

  it("bad bytes fail the consumer's stream with BadNar, and the plan's own failure comes through", () => {
    const truncated = checkedNar(Effect.succeed({ bytes: Stream.make(nar.subarray(0, 100)), expect: [] }))
    expect(errorOf(Stream.runCollect(narEvents(truncated)))).toBeInstanceOf(BadNar)
    const lookupFails = checkedNar(Effect.fail("no such path" as const))
    expect(errorOf(Stream.runCollect(narEvents(lookupFails)))).toBe("no such path")
  })

  it("checkNar gives the digest", () => {
    const result = Effect.runSync(checkNar(Stream.fromIterable(chunks), { contentHash: { method: "recursive", algorithm: "sha1" }, validate: false }))
    expect(Hash.equals(result.narHash, right.narHash!)).toBe(true)
    expect(Hash.equals(result.contentHash!, sha("sha1", nar))).toBe(true)
  })
})
