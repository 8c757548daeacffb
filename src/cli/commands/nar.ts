/** `b3 nar dump|restore|ls|cat`: NAR archives on the command line (like `nix-store --dump/--restore`, `nix nar ls/cat`). */
import { Effect, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { writeSync } from "node:fs"
import { resolve } from "node:path"
import { readFileStream } from "../../io/file-stream.ts"
import * as StorePath from "../../core/store-path.ts"
import { decodeNar, findNode, listingJson, narListing, type ListingNode } from "../../nar/index.ts"
import { FileNotFound, forEachNarChunk, restoreNarFromFd } from "../../nar/fs/index.ts"
import type { NarEvent } from "../../nar/events.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import { fromResult } from "../effect-result.ts"
import { switchFlag } from "../flags.ts"
import { outputMode, printJson, rejectJson, UsageError } from "../output.ts"
import { cliStore } from "../open-store.ts"
import { StoreRead } from "../../services/store-read.ts"
import { writeStdout } from "../stdio.ts"

const stdoutError = (e: unknown) =>
  new StoreIoError({
    store: "stdout",
    operation: "write",
    reason: (e as NodeJS.ErrnoException).code === "EPIPE" ? "the reader closed the pipe" : e instanceof Error ? e.message : String(e)
  })

/**
 * Writes a chunk to stdout before returning (so its buffer can be reused): plain blocking writes to
 * fd 1, the fastest way into a pipe or file; a non-blocking stdout that is full goes through
 * process.stdout, and the chunk is released once that write has been flushed.
 */
const writeToStdout = (chunk: Uint8Array): StoreIoError | undefined | Promise<StoreIoError | undefined> => {
  let done = 0
  while (done < chunk.length) {
    try {
      done += writeSync(1, chunk, done, chunk.length - done)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") return stdoutError(e)
      const rest = chunk.subarray(done)
      return new Promise((resolve) => process.stdout.write(rest, (error) => resolve(error ? stdoutError(error) : undefined)))
    }
  }
  return undefined
}

/** Collects small chunks into writes of about 256 KiB (many small pipe writes cost more than copying). */
class CoalescingStdout {
  private readonly buffer = Buffer.allocUnsafe(256 * 1024)
  private used = 0

  write = (chunk: Uint8Array): StoreIoError | undefined | Promise<StoreIoError | undefined> => {
    if (this.used + chunk.length <= this.buffer.length) {
      this.buffer.set(chunk, this.used)
      this.used += chunk.length
      return undefined
    }
    const flushed = this.flush()
    const next = () => chunk.length > this.buffer.length ? writeToStdout(chunk) : this.write(chunk)
    if (flushed === undefined) return next()
    return flushed instanceof Promise ? flushed.then((e) => e ?? next()) : flushed
  }

  flush(): StoreIoError | undefined | Promise<StoreIoError | undefined> {
    const pending = this.buffer.subarray(0, this.used)
    this.used = 0
    return pending.length > 0 ? writeToStdout(pending) : undefined
  }
}

/** The NAR of a file-system path to stdout, through reused buffers. */
const dumpToStdout = (path: string) => Effect.gen(function*() {
  const out = new CoalescingStdout()
  yield* forEachNarChunk(path, out.write)
  const last = out.flush()
  const error = last instanceof Promise ? yield* Effect.promise(() => last) : last
  if (error) return yield* error
})

const dump = Command.make("dump", {
  store: Flag.String("store").pipe(Flag.optional, Flag.withDescription("dump a store path of this store (any store URI) instead of a file-system path")),
  path: Argument.String("path").pipe(Argument.withDescription("file-system path, or store path with --store"))
}, (args) => Effect.scoped(Effect.gen(function*() {
  yield* rejectJson("b3 nar dump", "a NAR")
  if (args.store._tag === "None") return yield* dumpToStdout(resolve(args.path))
  yield* Effect.gen(function*() {
    const store = yield* StoreRead
    const path = yield* fromResult(StorePath.parse(args.path, store.storeDir))
    yield* writeStdout(store.narFromPath(path))
  }).pipe(Effect.provide(cliStore(args.store.value)))
}))).pipe(Command.withDescription("Write the NAR serialisation of a path to stdout (like `nix-store --dump`, or `nix store dump-path` with --store)."),
  Command.withExamples([
    { command: "b3 nar dump ./src > src.nar", description: "serialise a tree" },
    { command: "b3 nar dump --store file:///srv/cache /nix/store/…-hello | b3 nar restore ./hello", description: "unpack a path from a binary cache" }
  ]))

const restore = Command.make("restore", {
  dir: Argument.String("dir").pipe(Argument.withDescription("where to unpack; must not exist"))
}, (args) => Effect.gen(function*() {
  const dir = resolve(args.dir)
  yield* restoreNarFromFd(0, dir)
  if ((yield* outputMode).json) yield* printJson({ path: dir })
})).pipe(
  Command.withDescription("Unpack a NAR from stdin into a new directory (like `nix-store --restore`); nothing is left behind on failure."),
  Command.withExamples([{ command: "b3 nar restore ./out < src.nar", description: "unpack a NAR into ./out (with --json: print {\"path\"})" }]))

const narFile = (file: string) => readFileStream(file, (e) => (e as NodeJS.ErrnoException).code === "ENOENT" ? new FileNotFound({ path: file })
  : new StoreIoError({ store: file, operation: "read", reason: e instanceof Error ? e.message : String(e) }))

const slash = Buffer.from("/")
const newline = Buffer.from("\n")

/** Text lines exactly as `nix nar ls [-l] [-R] [-d]` prints them (names are raw bytes). */
const listText = (node: ListingNode, inside: string, options: { readonly long: boolean; readonly recursive: boolean; readonly directory: boolean }): Array<Buffer> => {
  const lines: Array<Buffer> = []
  const showFile = (n: ListingNode, rel: Buffer) => {
    if (options.long) {
      const kind = n.type === "regular" ? (n.executable ? "-r-xr-xr-x" : "-r--r--r--") : n.type === "symlink" ? "lrwxrwxrwx" : "dr-xr-xr-x"
      const size = n.type === "regular" ? n.size : 0
      lines.push(Buffer.from(`${kind} ${String(size).padStart(20)} `), rel)
      if (n.type === "symlink") lines.push(Buffer.from(" -> "), Buffer.from(n.target))
    } else lines.push(rel)
    lines.push(newline)
    if (options.recursive && n.type === "directory") doPath(n, rel, false)
  }
  const doPath = (n: ListingNode, rel: Buffer, showDirectory: boolean) => {
    if (n.type === "directory" && !showDirectory) for (const [name, child] of n.entries) showFile(child, Buffer.concat([rel, slash, name]))
    else showFile(n, rel)
  }
  const base = inside.split("/").filter((p) => p !== "").pop() ?? ""
  doPath(node, Buffer.from(node.type === "directory" ? "." : base), options.directory)
  return lines
}

const ls = Command.make("ls", {
  recursive: switchFlag("recursive", "list subdirectories recursively").pipe(Flag.withAlias("R")),
  long: switchFlag("long", "show type, permissions and size").pipe(Flag.withAlias("l")),
  directory: switchFlag("directory", "show directories rather than their contents").pipe(Flag.withAlias("d")),
  file: Argument.String("nar-file"),
  inside: Argument.String("path-inside").pipe(Argument.withDefault("/"))
}, (args) => Effect.gen(function*() {
  const { json } = yield* outputMode
  if (json && args.directory) return yield* new UsageError({ reason: "'--directory' is useless with '--json'" })
  const listing = yield* narListing(narFile(args.file))
  const node = findNode(listing, args.inside)
  if (node === undefined) return yield* new FileNotFound({ path: `${args.file}:${args.inside}` })
  const out = json
    ? [Buffer.from(listingJson(node, { recursive: args.recursive })), newline]
    : listText(node, args.inside, args)
  yield* writeStdout(Stream.make(Buffer.concat(out)))
})).pipe(Command.withDescription("List the contents of a NAR file (like `nix nar ls`; --json prints the listing Nix publishes in binary caches)."),
  Command.withExamples([
    { command: "b3 nar ls -lR src.nar", description: "list everything, with sizes" },
    { command: "b3 nar ls --json --recursive src.nar", description: "the .ls listing a binary cache publishes" }
  ]))

const cat = Command.make("cat", {
  file: Argument.String("nar-file"),
  inside: Argument.String("path-inside")
}, (args) => Effect.gen(function*() {
  yield* rejectJson("b3 nar cat", "a file's contents")
  const target = args.inside.startsWith("/") ? args.inside : `/${args.inside}`
  let current = ""
  let inTarget = false
  let found = false
  const dirs: Array<string> = []
  const utf8 = new TextDecoder()
  yield* Stream.runForEach(decodeNar(narFile(args.file)), (event: NarEvent) => Effect.suspend(() => {
    switch (event._tag) {
      case "Directory": dirs.push(current); break
      case "Entry": current = `${dirs[dirs.length - 1]}/${utf8.decode(event.name)}`; break
      case "DirectoryEnd": dirs.pop(); break
      case "File": inTarget = (current || "/") === target; found ||= inTarget; break
      case "FileEnd": inTarget = false; break
      case "Contents": if (inTarget) return writeStdout(Stream.make(event.bytes))
    }
    return Effect.void
  }))
  if (!found) return yield* new FileNotFound({ path: `${args.file}:${target} (not a regular file in the NAR)` })
})).pipe(Command.withDescription("Print a regular file inside a NAR file (like `nix nar cat`)."),
  Command.withExamples([{ command: "b3 nar cat src.nar /hello.txt", description: "print one file from a NAR" }]))

export const narCommand = Command.make("nar").pipe(
  Command.withDescription("Create, inspect and unpack NAR archives."),
  Command.withSubcommands([dump, restore, ls, cat]),
  Command.withExamples([{ command: "b3 nar dump ./src | b3 nar restore ./copy", description: "copy a tree through a NAR" }])
)
