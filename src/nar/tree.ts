/**
 * Tree values: small file trees held in memory (for tests, fixtures and tiny store objects).
 * Names and symlink targets are JS strings (written as UTF-8); a directory's entries are kept
 * sorted the way a NAR sorts them, bytewise on the UTF-8 encoding.
 */
import { Effect, Result, Stream } from "effect"
import { decodeNarBytes } from "./decode.ts"
import { encodeNarBytes } from "./encode.ts"
import { BadNar } from "./errors.ts"
import * as Ev from "./events.ts"

export interface Regular { readonly _tag: "Regular"; readonly executable: boolean; readonly contents: Uint8Array }
export interface SymLink { readonly _tag: "SymLink"; readonly target: string }
export interface Directory { readonly _tag: "Directory"; readonly entries: ReadonlyMap<string, Tree> }
export type Tree = Regular | SymLink | Directory

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/** Orders names as a NAR does: bytewise on UTF-8 (which is code point order, not JS string order). */
export const compareNames = (a: string, b: string): number => Ev.compareBytes(utf8.encode(a), utf8.encode(b))

export const regular = (contents: Uint8Array | string, executable = false): Regular =>
  ({ _tag: "Regular", executable, contents: typeof contents === "string" ? utf8.encode(contents) : contents })

export const symlink = (target: string): SymLink => ({ _tag: "SymLink", target })

export const directory = (entries: Record<string, Tree> | Iterable<readonly [string, Tree]> = {}): Directory => {
  const list = Symbol.iterator in entries ? [...(entries as Iterable<readonly [string, Tree]>)] : Object.entries(entries)
  return { _tag: "Directory", entries: new Map(list.sort(([a], [b]) => compareNames(a, b))) }
}

/** The events of a tree, in NAR order. */
export function* toEvents(tree: Tree): Generator<Ev.NarEvent> {
  switch (tree._tag) {
    case "Regular":
      yield Ev.file(tree.contents.length, tree.executable)
      if (tree.contents.length > 0) yield Ev.contents(tree.contents)
      yield Ev.fileEnd
      return
    case "SymLink":
      yield Ev.symlink(tree.target)
      return
    case "Directory": {
      yield Ev.directory
      const names = [...tree.entries.keys()].map((name) => ({ name, bytes: utf8.encode(name) }))
      names.sort((a, b) => Ev.compareBytes(a.bytes, b.bytes))
      for (const { name, bytes } of names) {
        yield Ev.entry(bytes)
        yield* toEvents(tree.entries.get(name)!)
      }
      yield Ev.directoryEnd
    }
  }
}

/** Rebuilds a tree from a complete, well-formed event sequence (as `decodeNar` yields). */
export const fromEvents = (events: Iterable<Ev.NarEvent>): Result.Result<Tree, BadNar> => {
  const it = events[Symbol.iterator]()
  let index = 0
  const fail = (reason: string) => Result.fail(new BadNar({ offset: 0, reason: `event ${index}: ${reason}` }))
  const next = (): Ev.NarEvent | undefined => {
    const r = it.next()
    if (r.done) return undefined
    index++
    return r.value
  }
  const text = (bytes: Uint8Array, what: string): Result.Result<string, BadNar> => {
    try { return Result.succeed(strictUtf8.decode(bytes)) } catch { return fail(`${what} is not valid UTF-8 (trees hold text)`) }
  }
  const node = (event: Ev.NarEvent | undefined): Result.Result<Tree, BadNar> => {
    if (event === undefined) return fail("events ended inside a node")
    switch (event._tag) {
      case "File": {
        const parts: Array<Uint8Array> = []
        for (let e = next(); ; e = next()) {
          if (e === undefined) return fail("events ended inside a file")
          if (e._tag === "FileEnd") break
          if (e._tag !== "Contents") return fail(`unexpected ${e._tag} inside a file`)
          parts.push(e.bytes)
        }
        const contents = Buffer.concat(parts)
        if (contents.length !== event.size) return fail(`file has ${contents.length} bytes, declared ${event.size}`)
        return Result.succeed(regular(new Uint8Array(contents), event.executable))
      }
      case "Symlink":
        return Result.map(text(event.target, "symlink target"), symlink)
      case "Directory": {
        const entries: Array<readonly [string, Tree]> = []
        for (let e = next(); ; e = next()) {
          if (e === undefined) return fail("events ended inside a directory")
          if (e._tag === "DirectoryEnd") break
          if (e._tag !== "Entry") return fail(`unexpected ${e._tag} in a directory`)
          const name = text(e.name, "entry name")
          if (Result.isFailure(name)) return Result.fail(name.failure)
          const child = node(next())
          if (Result.isFailure(child)) return child
          entries.push([name.success, child.success])
        }
        return Result.succeed({ _tag: "Directory", entries: new Map(entries) })
      }
      default:
        return fail(`unexpected ${event._tag} where a node starts`)
    }
  }
  const root = node(next())
  if (Result.isSuccess(root) && next() !== undefined) return fail("events continue after the root node")
  return root
}

/** The NAR serialisation of a tree (fails on names a NAR cannot hold, e.g. "a/b" or ".."). */
export const toNar = (tree: Tree): Result.Result<Uint8Array, BadNar> => {
  const { bytes, error } = encodeNarBytes(toEvents(tree))
  return error ? Result.fail(error) : Result.succeed(bytes)
}

/** Parses a whole NAR held in memory into a tree. */
export const fromNar = (nar: Uint8Array): Result.Result<Tree, BadNar> => {
  const { events, error } = decodeNarBytes(nar)
  return error ? Result.fail(error) : fromEvents(events)
}

/** Collects an event stream into a tree (only for small trees: everything is held in memory). */
export const collectTree = <E, R>(events: Stream.Stream<Ev.NarEvent, E, R>): Effect.Effect<Tree, E | BadNar, R> =>
  Effect.flatMap(Stream.runCollect(events), (all) => {
    const r = fromEvents(all)
    return Result.isSuccess(r) ? Effect.succeed(r.success) : Effect.fail(r.failure)
  })

/** The events of a tree as a stream. */
export const treeStream = (tree: Tree): Stream.Stream<Ev.NarEvent> => Stream.fromIterable({ [Symbol.iterator]: () => toEvents(tree) })
