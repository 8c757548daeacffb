/**
 * The files of a store path, read from its NAR only (never from a file system): one directory's
 * entries from the NAR's listing, and a file's first bytes cut out of the NAR stream at the offset
 * the listing gives.
 */
import { Effect, Stream } from "effect"
import type { ListingNode } from "../../nar/listing.ts"

const decoder = new TextDecoder()

export interface DirectoryEntryJson {
  readonly name: string
  readonly type: "regular" | "symlink" | "directory"
  readonly size?: number
  readonly executable?: boolean
  readonly target?: string
  /** Entries of a directory (only counted here). */
  readonly entries?: number
}

/** The node at `sub` (`""` or `/a/b`) of a listing; undefined when there is none or a component is not a directory. */
export const nodeAt = (root: ListingNode, sub: string): ListingNode | undefined => {
  let node: ListingNode | undefined = root
  for (const part of sub.split("/").filter((p) => p.length > 0)) {
    if (node === undefined || node.type !== "directory") return undefined
    const want = part
    node = node.entries.find(([name]) => decoder.decode(name) === want)?.[1]
  }
  return node
}

/** JSON for one node: a directory's entries one level deep, or the node itself. */
export const describe = (name: string, node: ListingNode): DirectoryEntryJson => {
  switch (node.type) {
    case "regular": return { name, type: "regular", size: node.size, ...(node.executable ? { executable: true } : {}) }
    case "symlink": return { name, type: "symlink", target: decoder.decode(node.target) }
    case "directory": return { name, type: "directory", entries: node.entries.length }
  }
}

export const entriesOf = (node: ListingNode & { readonly type: "directory" }): Array<DirectoryEntryJson> =>
  node.entries.map(([name, child]) => describe(decoder.decode(name), child))

/** Bytes [start, start + length) of a stream, without keeping the rest. */
export const sliceBytes = <E, R>(stream: Stream.Stream<Uint8Array, E, R>, start: number, length: number): Effect.Effect<Uint8Array, E, R> =>
  Effect.suspend(() => {
    const out = new Uint8Array(length)
    let offset = 0
    let filled = 0
    return stream.pipe(
      Stream.takeWhile(() => filled < length),
      Stream.runForEach((chunk) => Effect.sync(() => {
        const from = Math.max(start - offset, 0)
        const to = Math.min(start + length - offset, chunk.length)
        if (from < to) {
          out.set(chunk.subarray(from, to), offset + from - start)
          filled += to - from
        }
        offset += chunk.length
      })),
      Effect.map(() => out.subarray(0, filled))
    )
  })

/** Whether bytes look like text: valid UTF-8 without NUL bytes (a cut-off last character is allowed). */
export const isText = (bytes: Uint8Array): boolean => {
  if (bytes.includes(0)) return false
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, Math.max(0, bytes.length - 3)))
    return true
  } catch {
    return false
  }
}
