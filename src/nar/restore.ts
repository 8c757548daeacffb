/**
 * Restoring a NAR stream to a directory. Everything is written under a temporary name next to
 * the target and renamed into place only when the whole archive was valid; on any failure or
 * interruption the temporary tree is removed. Entry names come from the validating decoder (no
 * `/`, `.`, `..`, NUL, no duplicates), every directory is one this restore created, files are
 * created with O_EXCL and symlinks are created, never followed, so nothing can be written outside
 * the target.
 */
import { Duration, Effect, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, symlinkSync, writeSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import { decodeNar, NarDecoder } from "./decode.ts"
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

  /** Applies a batch of events; a file-system failure comes back as a typed error. */
  applyAll(events: ReadonlyArray<NarEvent>, target: string): NarIoError | undefined {
    try {
      for (const event of events) this.apply(event)
      return undefined
    } catch (e) {
      return fsError(e, "restore", target)
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

const isDanglingLink = (path: string) => {
  try { return lstatSync(path).isSymbolicLink() } catch { return false }
}

/**
 * Runs `fill` with a writer rooted at a fresh temporary name next to `target`, then renames it to
 * `target`; the temporary tree is removed if `fill` fails or is interrupted.
 */
const restoreVia = <E, R>(target: string, fill: (writer: TreeWriter) => Effect.Effect<void, E, R>): Effect.Effect<void, E | NarIoError | TargetExists, R> =>
  Effect.gen(function*() {
    if (existsSync(target) || isDanglingLink(target)) return yield* new TargetExists({ path: target })
    const temp = join(dirname(target), `.${basename(target)}.restore-${process.pid}-${randomBytes(6).toString("hex")}`)
    yield* Effect.acquireUseRelease(
      Effect.sync(() => new TreeWriter(temp)),
      (writer) => Effect.gen(function*() {
        yield* fill(writer)
        writer.close()
        yield* Effect.try({ try: () => renameSync(temp, target), catch: (e) => fsError(e, "rename", target) })
      }),
      (writer, exit) => Effect.sync(() => {
        writer.close()
        if (exit._tag === "Failure") removeTree(temp)
      })
    )
  })

/** Restores `nar` to `target`, which must not exist. */
export const restoreNar = <E, R>(nar: Stream.Stream<Uint8Array, E, R>, target: string): Effect.Effect<void, E | BadNar | NarIoError | TargetExists, R> =>
  restoreVia(target, (writer) => Stream.runForEachArray(decodeNar(nar), (events) => {
    const error = writer.applyAll(events, target)
    return error ? Effect.fail(error) : Effect.void
  }))

/** Bytes read between yields to the scheduler (so an interruption is seen, and the temporary tree removed). */
const sliceBytes = 16 << 20

/**
 * Restores the NAR read from a file descriptor (a file or a pipe, e.g. 0 for stdin) to `target`:
 * large synchronous reads into one reused buffer, decoded and written without a stream in between
 * (the fastest path, for the CLI). A non-blocking descriptor with no data yet is polled.
 */
export const restoreNarFromFd = (fd: number, target: string): Effect.Effect<void, BadNar | NarIoError | TargetExists> =>
  restoreVia(target, (writer) => Effect.gen(function*() {
    const decoder = new NarDecoder()
    const events: Array<NarEvent> = []
    const buffer = Buffer.allocUnsafe(1 << 20)
    let sinceYield = 0
    for (;;) {
      let n: number
      try {
        n = readSync(fd, buffer, 0, buffer.length, null)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
          yield* Effect.sleep(Duration.millis(2))
          continue
        }
        return yield* fsError(e, "reading the NAR from", `file descriptor ${fd}`)
      }
      if (n === 0) break
      // contents events are views of `buffer`: they are written out before the next read
      const bad = decoder.push(buffer.subarray(0, n), events)
      const failed = writer.applyAll(events, target)
      events.length = 0
      if (failed) return yield* failed
      if (bad) return yield* bad
      sinceYield += n
      if (sinceYield >= sliceBytes) {
        sinceYield = 0
        yield* Effect.yieldNow
      }
    }
    const bad = decoder.end()
    if (bad) return yield* bad
  }))
