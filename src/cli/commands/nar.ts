/** `b3 nar dump|restore|ls|cat`: NAR archives on the command line (like `nix-store --dump/--restore`, `nix nar ls/cat`). */
import { Console, Effect, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { createReadStream } from "node:fs"
import { resolve } from "node:path"
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as StorePath from "../../core/store-path.ts"
import { decodeNar, FileNotFound, narFromPath, restoreNar } from "../../nar/index.ts"
import type { NarEvent } from "../../nar/events.ts"
import { StoreIoError } from "../../services/errors.ts"
import { fromResult } from "../effect-result.ts"
import { jsonFlag, switchFlag } from "../flags.ts"
import { openCliStore } from "../open-store.ts"
import { readStdin, writeStdout } from "../stdio.ts"

const dump = Command.make("dump", {
  store: Flag.String("store").pipe(Flag.optional, Flag.withDescription("dump a store path of this store (any store URI) instead of a file-system path")),
  path: Argument.String("path").pipe(Argument.withDescription("file-system path, or store path with --store"))
}, (args) => Effect.scoped(Effect.gen(function*() {
  if (args.store._tag === "None") return yield* writeStdout(narFromPath(resolve(args.path)))
  const store = yield* openCliStore(args.store.value)
  const path = yield* fromResult(StorePath.parse(args.path, store.read.storeDir))
  yield* writeStdout(store.read.narFromPath(path))
}))).pipe(Command.withDescription("Write the NAR serialisation of a path to stdout (like `nix-store --dump`, or `nix store dump-path` with --store)."))

const restore = Command.make("restore", {
  dir: Argument.String("dir").pipe(Argument.withDescription("where to unpack; must not exist"))
}, (args) => restoreNar(readStdin, resolve(args.dir))).pipe(
  Command.withDescription("Unpack a NAR from stdin into a new directory (like `nix-store --restore`); nothing is left behind on failure."))

const narFile = (file: string) => NodeStream.fromReadable({
  evaluate: () => createReadStream(file, { highWaterMark: 1 << 20 }),
  onError: (e) => (e as NodeJS.ErrnoException).code === "ENOENT" ? new FileNotFound({ path: file })
    : new StoreIoError({ store: file, operation: "read", reason: e instanceof Error ? e.message : String(e) })
})

interface Entry { readonly path: string; readonly type: "regular" | "directory" | "symlink"; readonly size?: number; readonly executable?: boolean; readonly target?: string }

/** Walks a NAR's events, giving each node its path inside the archive ("" for the root). */
const entries = <E>(nar: Stream.Stream<Uint8Array, E>) => Stream.suspend(() => {
  const dirs: Array<string> = []
  let pending = ""
  const utf8 = new TextDecoder()
  return decodeNar(nar).pipe(Stream.map((event: NarEvent): ReadonlyArray<Entry> => {
    switch (event._tag) {
      case "Directory": dirs.push(pending); return [{ path: pending, type: "directory" as const }]
      case "Entry": pending = `${dirs[dirs.length - 1]}/${utf8.decode(event.name)}`; return []
      case "DirectoryEnd": dirs.pop(); return []
      case "File": return [{ path: pending, type: "regular" as const, size: event.size, executable: event.executable }]
      case "Symlink": return [{ path: pending, type: "symlink" as const, target: utf8.decode(event.target) }]
      default: return []
    }
  }), Stream.flattenIterable)
})

const ls = Command.make("ls", {
  json: jsonFlag,
  recursive: switchFlag("recursive", "list everything below the path"),
  file: Argument.String("nar-file"),
  inside: Argument.String("path-inside").pipe(Argument.withDefault("/"))
}, (args) => Effect.gen(function*() {
  const prefix = args.inside === "/" ? "" : args.inside.replace(/\/$/, "")
  const all = yield* Stream.runCollect(entries(narFile(args.file)))
  const selected = [...all].filter((e) => e.path === prefix || (e.path.startsWith(prefix + "/") &&
    (args.recursive || !e.path.slice(prefix.length + 1).includes("/"))))
  if (selected.length === 0) return yield* new FileNotFound({ path: `${args.file}:${args.inside}` })
  if (args.json) { yield* Console.log(JSON.stringify(selected)); return }
  for (const e of selected) {
    if (e.path === prefix && e.type === "directory" && selected.length > 1) continue
    const kind = e.type === "directory" ? "dr-xr-xr-x" : e.type === "symlink" ? "lrwxrwxrwx" : e.executable ? "-r-xr-xr-x" : "-r--r--r--"
    yield* Console.log(`${kind} ${String(e.size ?? 0).padStart(12)} ${e.path || "/"}${e.target !== undefined ? ` -> ${e.target}` : ""}`)
  }
})).pipe(Command.withDescription("List the contents of a NAR file (like `nix nar ls`)."))

const cat = Command.make("cat", {
  file: Argument.String("nar-file"),
  inside: Argument.String("path-inside")
}, (args) => Effect.gen(function*() {
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
})).pipe(Command.withDescription("Print a regular file inside a NAR file (like `nix nar cat`)."))

export const narCommand = Command.make("nar").pipe(
  Command.withDescription("Create, inspect and unpack NAR archives."),
  Command.withSubcommands([dump, restore, ls, cat])
)
