/**
 * Restoring a NAR stream to a directory. Everything is written under a temporary name next to
 * the target and renamed into place only when the whole archive was valid; on any failure or
 * interruption the temporary tree is removed. Entry names come from the validating decoder (no
 * `/`, `.`, `..`, NUL), every directory is one this restore created, and symlinks are created,
 * never followed, so nothing can be written outside the target.
 */
import { Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, renameSync, rmSync, symlinkSync, writeSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { decodeNar } from "./decode.ts"
import { fsError, TargetExists, type BadNar, type NarIoError } from "./errors.ts"
import type { NarEvent } from "./events.ts"

const slash = Buffer.from("/")

/** Writes events to the file system under `root` (synchronous calls: fastest for many small files). */
class TreeWriter {
  readonly #stack: Array<Buffer> = []
  #pending: Buffer
  #fd = -1
  #executable = false

  constructor(root: string) {
    this.#pending = Buffer.from(root)
  }

  apply(event: NarEvent): void {
    switch (event._tag) {
      case "Directory":
        mkdirSync(this.#pending, { mode: 0o755 })
        this.#stack.push(this.#pending)
        break
      case "Entry":
        this.#pending = Buffer.concat([this.#stack[this.#stack.length - 1]!, slash, event.name])
        break
      case "DirectoryEnd":
        this.#stack.pop()
        break
      case "File":
        this.#executable = event.executable
        this.#fd = openSync(this.#pending, "wx", event.executable ? 0o755 : 0o644)
        break
      case "Contents": {
        let off = 0
        while (off < event.bytes.length) off += writeSync(this.#fd, event.bytes, off, event.bytes.length - off)
        break
      }
      case "FileEnd":
        closeSync(this.#fd)
        this.#fd = -1
        if (this.#executable) chmodSync(this.#pending, 0o755) // in case the umask removed x bits
        break
      case "Symlink":
        symlinkSync(Buffer.from(event.target), this.#pending)
        break
    }
  }

  close(): void {
    if (this.#fd >= 0) { try { closeSync(this.#fd) } catch { /* already closed */ } }
    this.#fd = -1
  }
}

const removeTree = (path: string) => {
  try { rmSync(path, { recursive: true, force: true }) } catch { /* best effort: the name is unique */ }
}

/** Restores `nar` to `target`, which must not exist. */
export const restoreNar = <E, R>(nar: Stream.Stream<Uint8Array, E, R>, target: string): Effect.Effect<void, E | BadNar | NarIoError | TargetExists, R> =>
  Effect.gen(function*() {
    if (existsSync(target) || isDanglingLink(target)) return yield* new TargetExists({ path: target })
    const temp = join(dirname(target), `.${basename(target)}.restore-${process.pid}-${randomBytes(6).toString("hex")}`)
    yield* Effect.acquireUseRelease(
      Effect.sync(() => new TreeWriter(temp)),
      (writer) => Effect.gen(function*() {
        yield* Stream.runForEachArray(decodeNar(nar), (events) => Effect.try({
          try: () => { for (const event of events) writer.apply(event) },
          catch: (e) => fsError(e, "restore", target)
        }))
        writer.close()
        yield* Effect.try({ try: () => renameSync(temp, target), catch: (e) => fsError(e, "rename", target) })
      }),
      (writer, exit) => Effect.sync(() => {
        writer.close()
        if (exit._tag === "Failure") removeTree(temp)
      })
    )
  })

const isDanglingLink = (path: string) => {
  try { return lstatSync(path).isSymbolicLink() } catch { return false }
}
