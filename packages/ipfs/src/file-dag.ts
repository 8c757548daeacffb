/**
 * A UnixFS file DAG built bottom-up from leaves given in order, as they come: raw leaves
 * (CIDv1, sha2-256) under dag-pb UnixFS `file` nodes of at most `maxChildren` links each (174,
 * the UnixFS importer's balanced layout), each node listing its children's byte counts
 * (`blockSizes`) so that `unixfs.cat` of the root yields the leaves concatenated and can seek.
 * A single leaf is its own root. Memory: one pending link list per tree level.
 */
import * as dagPb from "@ipld/dag-pb"
import { UnixFS } from "ipfs-unixfs"
import { CID } from "multiformats/cid"
import * as raw from "multiformats/codecs/raw"
import * as Digest from "multiformats/hashes/digest"
import { createHash } from "node:crypto"

export interface Block {
  readonly cid: CID
  readonly bytes: Uint8Array
}

export interface DagLink {
  readonly cid: CID
  /** File bytes under this link. */
  readonly size: number
  /** Serialised bytes of the whole sub-DAG (dag-pb's Tsize). */
  readonly tsize: number
}

export const defaultMaxChildren = 174

const sha256 = (bytes: Uint8Array) => Digest.create(0x12, createHash("sha256").update(bytes).digest())

/** A raw leaf block and its CID. */
export const rawBlock = (bytes: Uint8Array): Block => ({ cid: CID.createV1(raw.code, sha256(bytes)), bytes })

const fileNode = (links: ReadonlyArray<DagLink>): { block: Block; link: DagLink } => {
  const data = new UnixFS({ type: "file", blockSizes: links.map((l) => BigInt(l.size)) })
  const bytes = dagPb.encode(dagPb.prepare({ Data: data.marshal(), Links: links.map((l) => ({ Hash: l.cid, Name: "", Tsize: l.tsize })) }))
  const cid = CID.createV1(dagPb.code, sha256(bytes))
  const size = links.reduce((n, l) => n + l.size, 0)
  const tsize = links.reduce((n, l) => n + l.tsize, bytes.length)
  return { block: { cid, bytes }, link: { cid, size, tsize } }
}

export class FileDagBuilder {
  /** levels[0]: leaves not yet under a node; levels[i]: nodes of height i not yet under a parent. */
  private readonly levels: Array<Array<DagLink>> = [[]]
  private readonly maxChildren: number
  constructor(maxChildren = defaultMaxChildren) { this.maxChildren = maxChildren }

  /** Adds the next leaf: the blocks to store now (the leaf, and any node it completed). */
  add(leaf: Uint8Array): Array<Block> {
    const block = rawBlock(leaf)
    const out: Array<Block> = [block]
    this.push(0, { cid: block.cid, size: leaf.length, tsize: leaf.length }, out)
    return out
  }

  /** Closes the DAG: its root and the blocks still to store (no leaves: an empty file node). */
  finish(): { readonly root: DagLink; readonly blocks: Array<Block> } {
    const out: Array<Block> = []
    for (let level = 0; ; level++) {
      if (level === this.levels.length) {
        const { block, link } = fileNode([])
        return { root: link, blocks: [block] }
      }
      const pending = this.levels[level]!
      const higher = this.levels.slice(level + 1).some((l) => l.length > 0)
      if (!higher && pending.length === 1) return { root: pending[0]!, blocks: out }
      if (pending.length === 0) continue
      const { block, link } = fileNode(pending)
      out.push(block)
      this.levels[level] = []
      if (!higher) return { root: link, blocks: out }
      this.push(level + 1, link, out)
    }
  }

  private push(level: number, link: DagLink, out: Array<Block>) {
    if (this.levels.length === level) this.levels.push([])
    const links = this.levels[level]!
    links.push(link)
    if (links.length === this.maxChildren) {
      const { block, link: parent } = fileNode(links)
      out.push(block)
      this.levels[level] = []
      this.push(level + 1, parent, out)
    }
  }
}
