/**
 * NAR listings: the JSON Nix publishes next to a NAR in a binary cache (`<hash>.ls`, written with
 * `?write-nar-listing=true`) and prints for `nix nar ls --json`. For every node: its type; for
 * regular files the size, `executable` (only when set) and `narOffset` (where the contents start in
 * the NAR); for symlinks the target; for directories the entries, sorted bytewise.
 *
 * The listing is built from the event stream in one pass; byte offsets are recomputed from the
 * events (a NAR's layout is fully determined by them), so no decoder internals are needed.
 */
import { Effect, Result, Stream } from "effect"
import { decodeNar } from "./decode.ts"
import { BadNar } from "./errors.ts"
import type { NarEvent } from "./events.ts"
import { NarWriter } from "./nar-writer.ts"

export interface ListingRegular {
  readonly type: "regular"
  readonly size: number
  readonly executable: boolean
  /** offset of the file's first content byte in the NAR */
  readonly narOffset: number
}
export interface ListingSymlink { readonly type: "symlink"; readonly target: Uint8Array }
export interface ListingDirectory {
  readonly type: "directory"
  /** entries in NAR order (bytewise ascending names) */
  readonly entries: ReadonlyArray<readonly [Uint8Array, ListingNode]>
}
export type ListingNode = ListingRegular | ListingSymlink | ListingDirectory

const padded = (n: number) => n + NarWriter.padding(n)
const seq = NarWriter.seq
/** A length-prefixed, padded string of n bytes. */
const stringSize = (n: number) => 8 + padded(n)

interface OpenDirectory { readonly entries: Array<readonly [Uint8Array, ListingNode]>; pending: Uint8Array | undefined }

/**
 * Builds a listing from NAR events, tracking the NAR byte offset as it goes. Feed it the events of a
 * well-formed NAR (as `decodeNar` yields); a sequence that does not follow the grammar is a BadNar.
 */
export class ListingBuilder {
  /** the NAR offset after the events seen so far */
  offset = seq.magic.length
  private readonly stack: Array<OpenDirectory> = []
  private file: { size: number; executable: boolean; narOffset: number } | undefined
  private root: ListingNode | undefined
  private failed: BadNar | undefined

  private fail(reason: string): BadNar {
    this.failed ??= new BadNar({ offset: this.offset, reason: `listing: ${reason}` })
    return this.failed
  }

  /** A finished node: attach it to its directory entry (or make it the root). */
  private place(node: ListingNode): BadNar | undefined {
    const parent = this.stack[this.stack.length - 1]
    if (parent === undefined) {
      if (this.root !== undefined) return this.fail("more than one root node")
      this.root = node
      return undefined
    }
    if (parent.pending === undefined) return this.fail("a node without an entry name")
    parent.entries.push([parent.pending, node])
    parent.pending = undefined
    this.offset += seq.close.length // the entry's closing parenthesis
    return undefined
  }

  push(event: NarEvent): BadNar | undefined {
    if (this.failed) return this.failed
    if (this.file !== undefined && event._tag !== "Contents" && event._tag !== "FileEnd") return this.fail(`${event._tag} inside a file`)
    switch (event._tag) {
      case "Directory":
        this.offset += seq.directory.length
        this.stack.push({ entries: [], pending: undefined })
        return undefined
      case "Entry": {
        const dir = this.stack[this.stack.length - 1]
        if (dir === undefined || dir.pending !== undefined) return this.fail("an entry outside a directory")
        dir.pending = event.name
        this.offset += seq.entryName.length + stringSize(event.name.length) + seq.node.length
        return undefined
      }
      case "DirectoryEnd": {
        const dir = this.stack.pop()
        if (dir === undefined || dir.pending !== undefined) return this.fail("a directory end without its start")
        this.offset += seq.close.length
        return this.place({ type: "directory", entries: dir.entries })
      }
      case "File":
        this.offset += (event.executable ? seq.executable : seq.regular).length + 8
        this.file = { size: event.size, executable: event.executable, narOffset: this.offset }
        return undefined
      case "Contents":
        if (this.file === undefined) return this.fail("contents outside a file")
        this.offset += event.bytes.length
        return undefined
      case "FileEnd": {
        const file = this.file
        if (file === undefined) return this.fail("a file end outside a file")
        this.file = undefined
        this.offset = file.narOffset + padded(file.size) + seq.close.length
        return this.place({ type: "regular", ...file })
      }
      case "Symlink":
        this.offset += seq.symlink.length + stringSize(event.target.length) + seq.close.length
        return this.place({ type: "symlink", target: event.target })
    }
  }

  /** The listing of the whole archive. */
  end(): Result.Result<ListingNode, BadNar> {
    if (this.failed) return Result.fail(this.failed)
    if (this.root === undefined || this.stack.length > 0 || this.file !== undefined) return Result.fail(this.fail("events ended before the root node was complete"))
    return Result.succeed(this.root)
  }
}

/** The listing of NAR events (one pass; memory is the size of the listing, not of the contents). */
export const listingOfEvents = <E, R>(events: Stream.Stream<NarEvent, E, R>): Effect.Effect<ListingNode, E | BadNar, R> =>
  Effect.suspend(() => {
    const builder = new ListingBuilder()
    return Stream.runForEachArray(events, (batch) => {
      for (const event of batch) {
        const error = builder.push(event)
        if (error) return Effect.fail(error)
      }
      return Effect.void
    }).pipe(Effect.flatMap(() => {
      const result = builder.end()
      return Result.isSuccess(result) ? Effect.succeed(result.success) : Effect.fail(result.failure)
    }))
  })

/** The listing of a NAR byte stream (decoded and validated on the way). */
export const narListing = <E, R>(nar: Stream.Stream<Uint8Array, E, R>): Effect.Effect<ListingNode, E | BadNar, R> =>
  listingOfEvents(decodeNar(nar))

/** The node at `path` inside the listing ("" or "/" is the root; components separated by "/"). */
export const findNode = (root: ListingNode, path: string): ListingNode | undefined => {
  let node: ListingNode | undefined = root
  for (const part of path.split("/")) {
    if (part === "") continue
    if (node?.type !== "directory") return undefined
    const name = Buffer.from(part)
    node = node.entries.find(([n]) => Buffer.compare(n, name) === 0)?.[1]
  }
  return node
}

// ---- JSON exactly as Nix 2.8 writes it (json.cc): no spaces; `"` and `\` escaped, \n \r \t, other
// control bytes as \u00XX; every other byte (including non-UTF-8 ones) copied as it is.

const hex = "0123456789abcdef"

class JsonBytes {
  private buf = Buffer.allocUnsafe(4096)
  private pos = 0

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(bigger, 0, 0, this.pos)
    this.buf = bigger
  }

  ascii(s: string): this {
    this.room(s.length)
    this.pos += this.buf.write(s, this.pos, "latin1")
    return this
  }

  string(bytes: Uint8Array): this {
    this.room(bytes.length * 6 + 2)
    const b = this.buf
    let p = this.pos
    b[p++] = 0x22
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i]!
      if (c === 0x22 || c === 0x5c) { b[p++] = 0x5c; b[p++] = c }
      else if (c === 0x0a) { b[p++] = 0x5c; b[p++] = 0x6e }
      else if (c === 0x0d) { b[p++] = 0x5c; b[p++] = 0x72 }
      else if (c === 0x09) { b[p++] = 0x5c; b[p++] = 0x74 }
      else if (c < 0x20) {
        b[p++] = 0x5c; b[p++] = 0x75; b[p++] = 0x30; b[p++] = 0x30
        b[p++] = hex.charCodeAt(c >> 4); b[p++] = hex.charCodeAt(c & 15)
      } else b[p++] = c
    }
    b[p++] = 0x22
    this.pos = p
    return this
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

const writeNode = (out: JsonBytes, node: ListingNode, recursive: boolean): void => {
  switch (node.type) {
    case "regular":
      out.ascii(`{"type":"regular","size":${node.size}`)
      if (node.executable) out.ascii(`,"executable":true`)
      if (node.narOffset !== 0) out.ascii(`,"narOffset":${node.narOffset}`)
      out.ascii("}")
      return
    case "symlink":
      out.ascii(`{"type":"symlink","target":`).string(node.target).ascii("}")
      return
    case "directory": {
      out.ascii(`{"type":"directory","entries":{`)
      let first = true
      for (const [name, child] of node.entries) {
        if (!first) out.ascii(",")
        first = false
        out.string(name).ascii(":")
        if (recursive) writeNode(out, child, true)
        else out.ascii("{}")
      }
      out.ascii("}}")
    }
  }
}

/**
 * A node as Nix prints it with `nix nar ls --json` (`recursive`: with `-R`; without it, a
 * directory's entries are listed as `{}`).
 */
export const listingJson = (node: ListingNode, options: { readonly recursive?: boolean } = {}): Uint8Array => {
  const out = new JsonBytes()
  writeNode(out, node, options.recursive ?? true)
  return out.bytes()
}

/** The `.ls` file of a binary cache: `{"version":1,"root":…}` with the whole tree. */
export const listingFile = (root: ListingNode): Uint8Array => {
  const out = new JsonBytes()
  out.ascii(`{"version":1,"root":`)
  writeNode(out, root, true)
  out.ascii("}")
  return out.bytes()
}
