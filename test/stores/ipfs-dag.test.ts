/**
 * The IPFS layer's NAR layout, property-tested: the segmenter's leaves are the NAR byte for byte,
 * do not depend on how the NAR stream is chunked, and give a file the same leaves wherever it
 * sits; the file DAG built over any number of leaves reads back (unixfs `cat`, through Helia) as
 * their concatenation, with the same root CID every time.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import fc from "fast-check"
import { FileDagBuilder, rawBlock } from "../../packages/ipfs/src/file-dag.ts"
import { ipfsNode } from "../../packages/ipfs/src/helia-node.ts"
import { type Leaf, NarSegmenter } from "../../packages/ipfs/src/nar-segments.ts"
import * as Tree from "../../src/nar/tree.ts"

// Small sizes so that generated NARs exercise every boundary.
const options = { chunkSize: 64, inlineBelow: 16 }

const nameArb = fc.stringMatching(/^[a-z]{1,6}$/)
const contentsArb = fc.uint8Array({ minLength: 0, maxLength: 300 })
const dumpArb: fc.Arbitrary<Tree.Tree> = fc.letrec<{ node: Tree.Tree }>((tie) => ({
  node: fc.oneof({ depthSize: "small", withCrossShrink: true },
    fc.tuple(contentsArb, fc.boolean()).map(([c, x]) => Tree.regular(c, x)),
    nameArb.map((t) => Tree.symlink(t)),
    fc.dictionary(nameArb, tie("node"), { maxKeys: 4 }).map((entries) => Tree.directory(entries)))
})).node

const narOf = (dump: Tree.Tree): Uint8Array => Result.getOrThrow(Tree.toNar(dump))

/** The NAR cut at the given offsets, pushed through a segmenter. */
const segment = (nar: Uint8Array, cuts: ReadonlyArray<number>): Array<Leaf> => {
  const segmenter = new NarSegmenter(options)
  const leaves: Array<Leaf> = []
  const points = [...new Set(cuts.map((c) => c % (nar.length + 1)))].sort((a, b) => a - b)
  let from = 0
  for (const to of [...points, nar.length]) {
    const out = segmenter.push(nar.slice(from, to))
    if (!Array.isArray(out)) throw out
    leaves.push(...out)
    from = to
  }
  const last = segmenter.end()
  if (!Array.isArray(last)) throw last
  return [...leaves, ...last]
}

const hex = (leaves: ReadonlyArray<Leaf>) => leaves.map((l) => Buffer.from(l).toString("hex"))

describe("NAR segments", () => {
  it("are the NAR byte for byte, whatever the chunking, and never larger than a chunk", () => {
    fc.assert(fc.property(dumpArb, fc.array(fc.nat(), { maxLength: 12 }), (dump, cuts) => {
      const nar = narOf(dump)
      const leaves = segment(nar, cuts)
      expect(Buffer.concat(leaves).equals(Buffer.from(nar))).toBe(true)
      expect(leaves.every((l) => l.length > 0 && l.length <= options.chunkSize)).toBe(true)
      expect(hex(leaves)).toEqual(hex(segment(nar, [])))
    }), { numRuns: 300 })
  })

  it("give a large file the same leaves wherever it sits in a NAR", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: options.inlineBelow, maxLength: 400 }), dumpArb, nameArb, (file, other, name) => {
      const chunks: Array<string> = []
      for (let p = 0; p < file.length; p += options.chunkSize) chunks.push(Buffer.from(file.subarray(p, p + options.chunkSize)).toString("hex"))
      const alone = hex(segment(narOf(Tree.regular(file)), []))
      const nested = hex(segment(narOf(Tree.directory({ [`${name}0`]: other, [`${name}1`]: Tree.directory({ deep: Tree.regular(file, true) }) })), [7, 100]))
      for (const leaves of [alone, nested]) {
        const at = leaves.indexOf(chunks[0]!)
        expect(at).toBeGreaterThanOrEqual(0)
        expect(leaves.slice(at, at + chunks.length)).toEqual(chunks)
      }
    }), { numRuns: 200 })
  })

  it("reject a malformed NAR with BadNar", () => {
    const nar = narOf(Tree.regular("hello"))
    const bad = nar.slice()
    bad[3] = 0x41
    const out = new NarSegmenter(options).push(bad)
    expect(Array.isArray(out) ? "leaves" : out._tag).toBe("BadNar")
    const truncated = new NarSegmenter(options)
    truncated.push(nar.subarray(0, nar.length - 8))
    const end = truncated.end()
    expect(Array.isArray(end) ? "leaves" : end._tag).toBe("BadNar")
  })
})

describe("file DAG", () => {
  it.effect("reads back through Helia as the leaves concatenated, with a stable root CID", () => Effect.scoped(Effect.gen(function*() {
    const node = yield* ipfsNode("ipfs://test", { listen: [], peers: [] })
    const samples = fc.sample(fc.array(fc.uint8Array({ minLength: 1, maxLength: 50 }), { minLength: 0, maxLength: 60 }), { numRuns: 40, seed: 7 })
    for (const leaves of samples) {
      for (const maxChildren of [2, 3, 174]) {
        const build = () => {
          const dag = new FileDagBuilder(maxChildren)
          const blocks = leaves.flatMap((leaf) => dag.add(leaf))
          const { root, blocks: last } = dag.finish()
          return { root, blocks: [...blocks, ...last] }
        }
        const { root, blocks } = build()
        expect(build().root.cid.equals(root.cid)).toBe(true)
        const expected = Buffer.concat(leaves)
        expect(root.size).toBe(expected.length)
        if (leaves.length === 1) expect(root.cid.equals(rawBlock(leaves[0]!).cid)).toBe(true)
        const read = yield* Effect.promise(async () => {
          for (const block of blocks) await node.helia.blockstore.put(block.cid, block.bytes)
          const chunks: Array<Uint8Array> = []
          for await (const chunk of node.fs.cat(root.cid, { offline: true })) chunks.push(chunk)
          return Buffer.concat(chunks)
        })
        expect(read.equals(expected)).toBe(true)
        // seeking uses the nodes' blockSizes
        if (expected.length > 10) {
          const part = yield* Effect.promise(async () => {
            const chunks: Array<Uint8Array> = []
            for await (const chunk of node.fs.cat(root.cid, { offline: true, offset: 3, length: expected.length - 7 })) chunks.push(chunk)
            return Buffer.concat(chunks)
          })
          expect(part.equals(expected.subarray(3, expected.length - 4))).toBe(true)
        }
      }
    }
  })))
})
