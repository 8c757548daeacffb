/**
 * The IPFS layer: the StoreRead/StoreWrite conformance suite through the `ipfs://` URI, plus
 * what is particular to it: the root pointer, the binary-cache layout inside the root, leaves
 * that follow the files inside a NAR, and URIs it refuses.
 */
import { describe, expect, it } from "@effect/vitest"
import * as dagPb from "@ipld/dag-pb"
import { Effect, Option, Stream } from "effect"
import { UnixFS } from "ipfs-unixfs"
import { CID } from "multiformats/cid"
import { base32 } from "multiformats/bases/base32"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { open, openWritable } from "../support/stores.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { storeConformance, uriStore } from "./store-suite.ts"

const scratchDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-ipfs-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** Where blockstore-fs keeps a block: `B` + its multihash in base32, under a directory named by the last two characters. */
const blockFile = (repo: string, cid: CID) => {
  const name = `B${base32.encode(cid.multihash.bytes).slice(1).toUpperCase()}`
  return join(repo, "blocks", name.slice(-2), `${name}.data`)
}

storeConformance("ipfs:// (repo on disk)", () => uriStore(Effect.map(scratchDir, (dir) => `ipfs://?repo=${join(dir, "repo")}`)), { checksReferences: false })

describe("ipfs:// specifics", () => {
  it.effect("keeps paths in sharded directories across reopening; each write publishes a new root", () => Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "b3-ipfs-many-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const uri = `ipfs://?repo=${join(dir, "repo")}`
    const roots = new Set<string>()
    const added = yield* Effect.scoped(Effect.gen(function*() {
      const { write } = yield* openWritable(uri)
      return yield* Effect.forEach(Array.from({ length: 60 }, (_, i) => i), (i) => Effect.tap(write.addText(`t${i}`, `text ${i}\n`),
        () => Effect.sync(() => roots.add(readFileSync(join(dir, "repo/root"), "utf8").trim()))))
    }))
    expect(roots.size).toBe(60)
    const root = readFileSync(join(dir, "repo/root"), "utf8").trim()
    // the root directory is a HAMT by now (60 narinfo links are well over 1 KiB)
    const rootBlock = readFileSync(blockFile(join(dir, "repo"), CID.parse(root)))
    expect(UnixFS.unmarshal(dagPb.decode(rootBlock).Data!).type).toBe("hamt-sharded-directory")
    yield* Effect.scoped(Effect.gen(function*() {
      const { read } = yield* open(`ipfs://${root}?repo=${join(dir, "repo")}`)
      expect((yield* read.queryValidPaths(added.map((i) => i.path))).length).toBe(60)
      for (const info of [added[0]!, added[37]!]) {
        expect(Option.map(yield* read.queryPathFromHashPart(info.path.hashPart), StorePath.baseName)).toEqual(Option.some(StorePath.baseName(info.path)))
        const nar = Buffer.concat([...(yield* Stream.runCollect(read.narFromPath(info.path)))])
        expect(nar.length).toBe(info.narSize)
      }
    }))
  }), 60_000)

  it.effect("refuses bad ipfs:// URIs", () => Effect.gen(function*() {
    for (const [uri, reason] of [
      ["ipfs://", /needs repo=DIR/],
      ["ipfs://?repo=/tmp/x&peer=/ip4/10.0.0.1/tcp/4001", /loopback/],
      ["ipfs://?repo=/tmp/x&listen=/ip4/0.0.0.0/tcp/0", /loopback/],
      ["ipfs://?repo=/tmp/x&colour=red", /unknown option/],
      ["ipfs://notacid?repo=/tmp/x", /not a CID/]
    ] as const) {
      const error = yield* Effect.flip(Effect.scoped(open(uri)))
      expect(error._tag).toBe("BadStoreUri")
      expect(error.message).toMatch(reason)
    }
  }))
})
