/**
 * NAR listings against Nix 2.8: the `.ls` file `nix copy --to 'file://…?write-nar-listing=true'`
 * writes, and `nix nar ls --json [-R]`, byte for byte (including names that need JSON escapes and
 * names that are not UTF-8).
 */
import { Effect, Result, Stream } from "effect"
import fc from "fast-check"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Tree from "../../src/nar/tree.ts"
import { decodeNarBytes } from "../../src/nar/decode.ts"
import * as Ev from "../../src/nar/events.ts"
import { findNode, ListingBuilder, listingFile, listingJson, listingOfEvents, narListing, type ListingNode } from "../../src/nar/listing.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"
import { arbTree, chunked, makeKitchenSink, writeDump } from "./support.ts"

const scratch = makeScratch("b3-nar-ls-")
afterAll(() => removeScratch(scratch))
let counter = 0
const fresh = (label: string) => join(scratch, `${label}-${counter++}`)

const listingOf = (nar: Uint8Array, cuts: ReadonlyArray<number> = []): Promise<ListingNode> =>
  Effect.runPromise(narListing(Stream.fromIterable(chunked(nar, cuts))))

/** Adds `tree` to a chroot store, copies it to a file:// cache with listings; returns the NAR and the .ls bytes. */
const nixListingFile = (tree: string): { nar: Uint8Array; ls: Buffer } => {
  const store = fresh("store")
  const cache = fresh("cache")
  const path = nix("nix-store", ["--store", store, "--add", tree])
  nix("nix", ["copy", "--store", store, "--to", `file://${cache}?write-nar-listing=true&compression=none`, path])
  const hashPart = path.slice("/nix/store/".length, "/nix/store/".length + 32)
  return { nar: nixBytes("nix-store", ["--dump", tree]), ls: readFileSync(join(cache, `${hashPart}.ls`)) }
}

describe("NAR listings vs Nix", () => {
  it("the .ls file of a binary cache, for a tree of tricky names, executables, symlinks and sizes", async () => {
    const tree = makeKitchenSink(fresh("kitchen"))
    const { nar, ls } = nixListingFile(tree)
    const listing = await listingOf(nar, [5000, 5001, 100_000])
    expect(Buffer.from(listingFile(listing)).toString("latin1")).toBe(ls.toString("latin1"))
  })

  it("the .ls files of random trees", async () => {
    for (const dump of fc.sample(arbTree, { numRuns: 8, seed: 0x15 })) {
      const tree = fresh("random")
      writeDump(dump, tree)
      const { nar, ls } = nixListingFile(tree)
      expect(Buffer.from(listingFile(await listingOf(nar))).equals(ls)).toBe(true)
    }
  })

  it("nix nar ls --json, with and without -R, at the root and inside", async () => {
    const tree = makeKitchenSink(fresh("kitchen"))
    const narFile = fresh("kitchen.nar")
    const nar = nixBytes("nix-store", ["--dump", tree])
    writeFileSync(narFile, nar)
    const listing = await listingOf(nar)
    for (const inside of ["/", "/nested", "/nested/\u{1F600}", "/nested/big", "/nested/tool", "/nested/relative", "/odd", "/empty"]) {
      const node = findNode(listing, inside)!
      expect(node, inside).toBeDefined()
      for (const recursive of [true, false]) {
        const expected = nixBytes("nix", ["nar", "ls", "--json", ...(recursive ? ["-R"] : []), narFile, inside])
        expect(Buffer.from(listingJson(node, { recursive })).toString("latin1"), `${inside} ${recursive}`).toBe(expected.toString("latin1"))
      }
    }
    expect(findNode(listing, "/nested/missing")).toBeUndefined()
    expect(findNode(listing, "/a/below-a-file")).toBeUndefined()
  })

  it("a single file and a symlink as the root", async () => {
    for (const dump of [Tree.regular("#!/bin/sh\n", true), Tree.regular(""), Tree.symlink("../x")]) {
      const path = fresh("root")
      writeDump(dump, path)
      const { nar, ls } = nixListingFile(path)
      expect(Buffer.from(listingFile(await listingOf(nar))).equals(ls)).toBe(true)
    }
  })
})

describe("ListingBuilder", () => {
  it("computes narOffset from the events alone: it points at the contents in the NAR", () => {
    fc.assert(fc.property(arbTree, (dump) => {
      const nar = Result.getOrThrow(Tree.toNar(dump))
      const builder = new ListingBuilder()
      for (const event of decodeNarBytes(nar).events) expect(builder.push(event)).toBeUndefined()
      expect(builder.offset).toBe(nar.length)
      const check = (node: ListingNode, d: Tree.Tree) => {
        if (node.type === "regular" && d._tag === "Regular") {
          expect(Buffer.from(nar.subarray(node.narOffset, node.narOffset + node.size)).equals(d.contents)).toBe(true)
          expect(node.executable).toBe(d.executable)
        } else if (node.type === "directory" && d._tag === "Directory") {
          expect(node.entries.length).toBe(d.entries.size)
          for (const [name, child] of node.entries) check(child, d.entries.get(Buffer.from(name).toString())!)
        } else expect(node.type).toBe("symlink")
      }
      check(Result.getOrThrow(builder.end()), dump)
    }), { numRuns: 200 })
  })

  it("rejects event sequences that are not a NAR", async () => {
    const bad: ReadonlyArray<ReadonlyArray<Ev.NarEvent>> = [
      [Ev.directoryEnd],
      [Ev.directory, Ev.file(0)],
      [Ev.directory],
      [Ev.symlink("x"), Ev.symlink("y")],
      [Ev.contents(new Uint8Array(1))]
    ]
    for (const events of bad) {
      const result = await Effect.runPromise(Effect.result(listingOfEvents(Stream.fromIterable(events))))
      expect(result._tag).toBe("Failure")
    }
  })
})
