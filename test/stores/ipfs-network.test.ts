/**
 * Two b3 IPFS nodes in one process, talking libp2p over TCP on 127.0.0.1 only: node A adds a
 * signed closure; node B opens A's root CID read-only, fetches the blocks from A with bitswap and
 * copies the closure into a local store, byte for byte, with the signatures checked (and the copy
 * refused when the signing key is not trusted). Also: the root's files are a binary cache real Nix
 * copies from; blocks tampered with on disk are caught by the NAR hash check; and a file shared by
 * two paths takes its space once in the blockstore.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import { CID } from "multiformats/cid"
import { randomBytes } from "node:crypto"
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Signature from "../../src/core/signature.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import { ipfsNode } from "../../packages/ipfs/src/helia-node.ts"
import { ipfsOptionsFromUri } from "../../packages/ipfs/src/opener.ts"
import { openIpfsStore } from "../../packages/ipfs/src/ipfs-store.ts"
import { copyPaths } from "../../src/services/copy.ts"
import { requireWrite } from "../../src/services/registry.ts"
import { open } from "../support/stores.ts"
import type { StoreReadApi } from "../../src/services/store-read.ts"
import { parseStoreUri } from "../../src/services/store-uri.ts"
import { addClosureOver } from "../support/closure.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"

const scratchDir = Effect.acquireRelease(Effect.sync(() => makeScratch("b3-ipfs-net-")), (dir) => Effect.sync(() => removeScratch(dir)))

/** The IPFS store itself (root CID and listening addresses included), opened from its URI. */
const openIpfs = (uri: string) => Effect.gen(function*() {
  const parsed = yield* Effect.fromResult(parseStoreUri(uri))
  return yield* openIpfsStore(yield* ipfsOptionsFromUri(parsed))
})

const narOf = (store: StoreReadApi, path: StorePath.StorePath) =>
  Effect.map(Stream.runCollect(store.narFromPath(path)), (chunks) => Buffer.concat([...chunks]))

/** Bytes of all the block files under a repo. */
const blockBytes = (repo: string): number => {
  let total = 0
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name))
      else total += statSync(join(dir, entry.name)).size
    }
  }
  walk(join(repo, "blocks"))
  return total
}

const blockFiles = (repo: string): Array<string> =>
  readdirSync(join(repo, "blocks"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))

const writeKey = (dir: string, name: string) => {
  const key = Signature.generateSecretKey(name)
  const file = join(dir, `${name}.sk`)
  writeFileSync(file, Signature.printSecretKey(key))
  return { file, publicKey: Signature.publicKeyOf(key) }
}

describe("ipfs:// between two nodes over loopback", () => {
  it.effect("node B copies a signed closure from node A's root, byte for byte, checking signatures", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const sourceRoot = join(dir, "source")
    const base = yield* Effect.promise(async () => {
      mkdirSync(join(dir, "tree/bin"), { recursive: true })
      writeFileSync(join(dir, "tree/bin/tool"), "#!/bin/sh\necho tool\n", { mode: 0o755 })
      writeFileSync(join(dir, "tree/blob"), randomBytes(3 << 20))
      return nix("nix-store", ["--store", sourceRoot, "--add", join(dir, "tree")])
    })
    const closure = yield* Effect.promise(() => addClosureOver(sourceRoot, base, "net"))
    const top = yield* Effect.fromResult(StorePath.parse(closure.top))
    const key = writeKey(dir, "b3-ipfs-test-1")
    const stranger = writeKey(dir, "someone-else-1")

    // Node A: the repo's writable store, listening on a free loopback port, signing what it adds.
    const a = yield* openIpfs(`ipfs://?repo=${join(dir, "repo-a")}&listen=/ip4/127.0.0.1/tcp/0&secret-key=${key.file}`)
    const source = yield* LocalStore.make({ root: sourceRoot })
    const added = yield* copyPaths(source.read, { read: a.read, write: a.write! }, [top], { checkSigs: false })
    expect(added.copied.length).toBe(3)
    const root = a.root()
    expect(readFileSync(join(dir, "repo-a/root"), "utf8").trim()).toBe(root)
    const addresses = a.addresses()
    expect(addresses.length).toBeGreaterThan(0)
    for (const address of addresses) expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+$/)

    // Node B: A's root by CID, read-only, with its own (empty) repo, fetching from A.
    const bUri = `ipfs://${root}?repo=${join(dir, "repo-b")}&peer=${addresses[0]}`
    const b = yield* open(`${bUri}&trusted-public-keys=${Signature.printPublicKey(key.publicKey)}`)
    expect(b.write).toBeUndefined()
    expect((yield* Effect.flip(requireWrite(b)))._tag).toBe("Unsupported")
    // opening read the root directory and nix-cache-info from A: a few hundred bytes, no NAR yet
    expect(blockBytes(join(dir, "repo-b"))).toBeLessThan(4096)

    const target = yield* LocalStore.make({ root: join(dir, "target") })
    const copied = yield* copyPaths(b.read, target, [top], { trustedKeys: [key.publicKey] })
    expect(copied.copied.map((p) => StorePath.print(p)).sort()).toEqual(closure.all)
    for (const path of closure.all) {
      const p = yield* Effect.fromResult(StorePath.parse(path))
      expect((yield* narOf(target.read, p)).equals(yield* narOf(source.read, p))).toBe(true)
      const info = yield* target.read.queryPathInfo(p)
      if (!info.ca) expect(info.signatures.some((s) => s.startsWith("b3-ipfs-test-1:"))).toBe(true)
    }
    // the blocks came over the network into B's repo
    expect(blockBytes(join(dir, "repo-b"))).toBeGreaterThan(3 << 20)
    yield* Effect.sync(() => nix("nix-store", ["--store", join(dir, "target"), "--verify", "--check-contents"]))

    // Not trusted: copyPaths refuses the input-addressed path, and nothing enters the target.
    const target2 = yield* LocalStore.make({ root: join(dir, "target-2") })
    const refused = yield* Effect.flip(copyPaths(b.read, target2, [top], { trustedKeys: [stranger.publicKey] }))
    expect(refused._tag).toBe("SignatureError")
    expect(yield* target2.read.queryValidPaths(closure.all.map((p) => StorePath.parse(p)).flatMap((r) => r._tag === "Success" ? [r.success] : []))).toEqual([])
    // and a store told to trust only the stranger's key serves none of A's input-addressed paths
    const strict = yield* open(`${bUri.replace("repo-b", "repo-c")}&trusted-public-keys=${Signature.printPublicKey(stranger.publicKey)}`)
    expect((yield* Effect.flip(strict.read.queryPathInfo(top)))._tag).toBe("SignatureError")
    expect((yield* Effect.flip(Stream.runDrain(strict.read.narFromPath(top))))._tag).toBe("SignatureError")
  })), 120_000)
})

describe("ipfs:// root layout", () => {
  it.effect("the root's files are a binary cache real Nix copies from, signatures checked", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const sourceRoot = join(dir, "source")
    mkdirSync(join(dir, "tree/bin"), { recursive: true })
    writeFileSync(join(dir, "tree/bin/tool"), "#!/bin/sh\necho tool\n", { mode: 0o755 })
    writeFileSync(join(dir, "tree/blob"), randomBytes(700_000))
    const base = nix("nix-store", ["--store", sourceRoot, "--add", join(dir, "tree")])
    const closure = yield* Effect.promise(() => addClosureOver(sourceRoot, base, "layout"))
    const key = writeKey(dir, "b3-ipfs-layout-1")
    const store = yield* openIpfs(`ipfs://?repo=${join(dir, "repo")}&secret-key=${key.file}`)
    const source = yield* LocalStore.make({ root: sourceRoot })
    yield* copyPaths(source.read, { read: store.read, write: store.write! }, [yield* Effect.fromResult(StorePath.parse(closure.top))], { checkSigs: false })

    // Write the root's tree out as files, as an IPFS gateway would serve them under /ipfs/<root>/.
    const reader = yield* ipfsNode("ipfs://export", { repo: join(dir, "repo"), listen: [], peers: [] })
    const cache = join(dir, "cache")
    const files: Array<string> = []
    yield* Effect.promise(async () => {
      const walk = async (cid: CID, at: string): Promise<void> => {
        mkdirSync(at, { recursive: true })
        for await (const entry of reader.fs.ls(cid, { offline: true })) {
          if ((await reader.fs.stat(entry.cid, { offline: true })).type === "directory") { await walk(entry.cid, join(at, entry.name)); continue }
          const chunks: Array<Uint8Array> = []
          for await (const chunk of reader.fs.cat(entry.cid, { offline: true })) chunks.push(chunk)
          writeFileSync(join(at, entry.name), Buffer.concat(chunks))
          files.push(join(at, entry.name).slice(cache.length + 1))
        }
      }
      await walk(CID.parse(store.root()), cache)
    })
    expect(files.filter((f) => f.endsWith(".narinfo")).length).toBe(3)
    expect(files.filter((f) => /^nar\/bafy[a-z2-7]+\.nar$|^nar\/bafk[a-z2-7]+\.nar$/.test(f)).length).toBe(3)
    expect(files).toContain("nix-cache-info")

    const target = join(dir, "nix-target")
    nix("nix", ["copy", "--from", `file://${cache}`, "--to", target, "--option", "trusted-public-keys", Signature.printPublicKey(key.publicKey), closure.top])
    for (const path of closure.all) {
      expect(nixBytes("nix", ["store", "dump-path", "--store", target, path]).equals(nixBytes("nix", ["store", "dump-path", "--store", sourceRoot, path]))).toBe(true)
    }
    nix("nix-store", ["--store", target, "--verify", "--check-contents"])
  })), 60_000)
})

describe("ipfs:// blocks on disk", () => {
  it.effect("a file shared by two paths takes its space once in the blockstore", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const shared = randomBytes(8 << 20)
    mkdirSync(join(dir, "one/lib"), { recursive: true })
    mkdirSync(join(dir, "two/share/data"), { recursive: true })
    writeFileSync(join(dir, "one/README"), "the first path\n")
    writeFileSync(join(dir, "one/lib/big.so"), shared)
    writeFileSync(join(dir, "two/aaa-comes-first"), randomBytes(5000))
    writeFileSync(join(dir, "two/share/data/copy-of-big"), shared)
    const repo = join(dir, "repo")
    const { write } = yield* Effect.flatMap(open(`ipfs://?repo=${repo}`), (s) => Effect.succeed({ write: s.write! }))
    const before = blockBytes(repo)
    const one = yield* write.addPath(join(dir, "one"))
    const afterOne = blockBytes(repo)
    const two = yield* write.addPath(join(dir, "two"))
    const afterTwo = blockBytes(repo)
    const stored = afterTwo - before
    console.log(`ipfs dedup: NARs ${one.narSize} + ${two.narSize} = ${one.narSize + two.narSize} bytes; blockstore grew ${afterOne - before} then ${afterTwo - afterOne} = ${stored} bytes (${(stored / shared.length).toFixed(3)}x the shared file)`)
    expect(stored).toBeLessThan(1.2 * shared.length)
    expect(afterTwo - afterOne).toBeLessThan(64 * 1024)
  })), 60_000)

  it.effect("a NAR whose blocks were tampered with on disk fails the NAR hash check, and nothing is copied", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratchDir
    const contents = randomBytes(1 << 20)
    writeFileSync(join(dir, "payload"), contents)
    const repo = join(dir, "repo")
    const ipfs = yield* open(`ipfs://?repo=${repo}`)
    const info = yield* ipfs.write!.addPath(join(dir, "payload"))
    // The leaf holding the file's second 256 KiB: find its block file by its contents and flip a byte.
    const piece = contents.subarray(256 << 10, 512 << 10)
    const leaf = blockFiles(repo).find((file) => readFileSync(file).equals(piece))
    expect(leaf).toBeDefined()
    const bytes = readFileSync(leaf!)
    bytes[1000] = bytes[1000]! ^ 0xff
    writeFileSync(leaf!, bytes)

    const error = yield* Effect.flip(Stream.runDrain(ipfs.read.narFromPath(info.path)))
    expect(error._tag).toBe("HashMismatch")
    const target = yield* LocalStore.make({ root: join(dir, "target") })
    const failed = yield* Effect.flip(copyPaths(ipfs.read, target, [info.path]))
    expect(failed._tag).toBe("HashMismatch")
    expect(yield* target.read.isValidPath(info.path)).toBe(false)
    expect(Option.isNone(yield* target.read.queryPathFromHashPart(info.path.hashPart))).toBe(true)
  })), 60_000)
})
