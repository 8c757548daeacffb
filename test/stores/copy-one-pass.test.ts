/**
 * `copy` from a file cache into a local store reads each NAR in one pass: every byte of it goes
 * through the NAR decoder once and through a hash function once, whoever checks it (the cache
 * against its narinfo, `copy` against the content address, the local store against the PathInfo).
 * Counted by wrapping the decoder's `push` and node's `Hash#update` for the duration of the copy.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Hash from "../../src/core/hash.ts"
import * as Signature from "../../src/core/signature.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { makeBinaryCacheStore } from "../../src/layers/binary-cache/binary-cache-store.ts"
import { makeFileBlobs } from "../../src/layers/binary-cache/file-blobs.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import { NarDecoder } from "../../src/nar/decode.ts"
import * as Tree from "../../src/nar/tree.ts"
import { copyPaths } from "../../src/services/copy.ts"
import { fingerprint } from "../../src/core/path-info.ts"

const counted = { decoded: 0, hashed: 0 }
let dir: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "b3-copy-one-pass-"))
})
afterEach(() => {
  vi.restoreAllMocks()
  rmSync(dir, { recursive: true, force: true })
})

/** From here on, count the bytes every NAR decoder and every hash function is fed. */
const startCounting = () => {
  counted.decoded = 0
  counted.hashed = 0
  const push = NarDecoder.prototype.push
  vi.spyOn(NarDecoder.prototype, "push").mockImplementation(function(this: NarDecoder, chunk, out) {
    counted.decoded += chunk.length
    return push.call(this, chunk, out)
  })
  const hashProto = Object.getPrototypeOf(createHash("sha256")) as { update: (data: Uint8Array | string, encoding?: string) => unknown }
  const update = hashProto.update
  vi.spyOn(hashProto, "update").mockImplementation(function(this: unknown, data: Uint8Array | string, encoding?: string) {
    counted.hashed += typeof data === "string" ? Buffer.byteLength(data) : data.length
    return update.call(this, data, encoding)
  })
}

const fileCache = (root: string) =>
  makeBinaryCacheStore(makeFileBlobs(`file://${root}`, root), { compression: "none", writable: true })

const copyOnce = (source: (cacheDir: string) => Effect.Effect<{ path: StorePath.StorePath; narSize: number; trusted: ReadonlyArray<Signature.PublicKey> }, unknown>) =>
  Effect.scoped(Effect.gen(function*() {
    const cacheDir = join(dir, "cache")
    const { path, narSize, trusted } = yield* source(cacheDir)
    const cache = yield* fileCache(cacheDir) // opened afresh: nothing remembered from the write
    const local = yield* LocalStore.make({ root: join(dir, "store") })
    startCounting()
    yield* copyPaths(cache.read, { read: local.read, write: local.write }, [path], { trustedKeys: trusted })
    const seen = { ...counted }
    vi.restoreAllMocks()
    const info = yield* local.read.queryPathInfo(path)
    expect(info.narSize).toBe(narSize)
    return seen
  }))

describe("copy file cache -> local store: one pass over each NAR", () => {
  it.effect("a content-addressed path (checked against its address): decoded once, hashed once", () => Effect.gen(function*() {
    const file = join(dir, "blob")
    writeFileSync(file, randomBytes(3 << 20))
    const seen = yield* copyOnce((cacheDir) => Effect.gen(function*() {
      const cache = yield* fileCache(cacheDir)
      const info = yield* cache.write.addPath(file)
      expect(info.ca?._tag).toBe("Fixed")
      return { path: info.path, narSize: info.narSize, trusted: [] }
    }))
    const narSize = (3 << 20) + 112
    expect(seen.decoded).toBe(narSize)
    // the NAR once, plus a few store-path and fingerprint hashes of a few hundred bytes
    expect(seen.hashed).toBeGreaterThanOrEqual(narSize)
    expect(seen.hashed).toBeLessThan(narSize + 64 * 1024)
  }))

  it.effect("a signed input-addressed tree: decoded once, hashed once", () => Effect.gen(function*() {
    const key = Signature.generateSecretKey("test-1")
    const nar = Effect.runSync(Effect.fromResult(Tree.toNar(Tree.directory({
      big: Tree.regular(randomBytes(2 << 20)),
      bin: Tree.directory({ tool: Tree.regular("#!/bin/sh\n", true) }),
      link: Tree.symlink("bin/tool")
    }))))
    const seen = yield* copyOnce((cacheDir) => Effect.gen(function*() {
      const cache = yield* fileCache(cacheDir)
      const path = StorePath.makeOutput("out", Hash.hashBytes("sha256", "a test derivation"), "tree")
      const info = { path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: [] }
      const signed = { ...info, signatures: [Signature.signDetached(key, fingerprint(info, StorePath.defaultStoreDir))] }
      yield* cache.write.addToStore(signed, Stream.make(nar))
      return { path, narSize: nar.length, trusted: [Signature.publicKeyOf(key)] }
    }))
    expect(seen.decoded).toBe(nar.length)
    expect(seen.hashed).toBeGreaterThanOrEqual(nar.length)
    expect(seen.hashed).toBeLessThan(nar.length + 64 * 1024)
  }))

  it.effect("a damaged NAR file (read from the file into reused buffers): the copy fails, nothing is registered or left", () => Effect.scoped(Effect.gen(function*() {
    const cacheDir = join(dir, "cache")
    const nar = Effect.runSync(Effect.fromResult(Tree.toNar(Tree.directory({ big: Tree.regular(randomBytes(3 << 20)) }))))
    const path = StorePath.makeOutput("out", Hash.hashBytes("sha256", "a damaged one"), "damaged")
    const writer = yield* fileCache(cacheDir)
    yield* writer.write.addToStore({ path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: [] }, Stream.make(nar))
    const narFile = join(cacheDir, "nar", readdirSync(join(cacheDir, "nar"))[0]!)
    const damaged = readFileSync(narFile)
    damaged[damaged.length >> 1]! ^= 0xff
    writeFileSync(narFile, damaged)
    const cache = yield* fileCache(cacheDir)
    const local = yield* LocalStore.make({ root: join(dir, "store") })
    const failed = yield* Effect.flip(copyPaths(cache.read, { read: local.read, write: local.write }, [path], { checkSigs: false }))
    expect(failed._tag).toBe("HashMismatch")
    expect(yield* local.read.isValidPath(path)).toBe(false)
    expect(readdirSync(join(dir, "store", "nix", "store")).filter((name) => !name.startsWith("."))).toEqual([])
  })))
})
