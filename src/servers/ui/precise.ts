/**
 * Where in a NAR a reference is held, as `nix why-depends --precise` shows it: every file whose
 * contents (or symlink whose target) hold a store path's hash part, with the byte offset in that file
 * and the text around it. Pure over NAR events.
 */
import { Effect, Stream } from "effect"
import type { BadNar } from "../../nar/errors.ts"
import type { NarEvent } from "../../nar/events.ts"

export interface ReferenceHit {
  /** Path of the file inside the store path, `""` for the store path itself, else starting with `/`. */
  readonly file: string
  readonly kind: "regular" | "symlink"
  /** Byte offset of the hash part in the file's contents (or in the symlink's target). */
  readonly offset: number
  /** Up to `context` bytes either side of the hash part, non-printable bytes shown as `.`. */
  readonly snippet: string
}

export interface ReferenceHits {
  readonly hits: Array<ReferenceHit>
  /** All occurrences, counting those past the first `maxHits`. */
  readonly total: number
}

const context = 32
const hashLength = 32
const decoder = new TextDecoder()

const printable = (bytes: Uint8Array) => {
  let s = ""
  for (const b of bytes) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "."
  return s
}

const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/** The occurrences of `hashPart` in a NAR's event stream (at most `maxHits` kept). */
export const referenceHits = <E, R>(
  events: Stream.Stream<NarEvent, E, R>,
  hashPart: string,
  maxHits = 100
): Effect.Effect<ReferenceHits, E | BadNar, R> => Effect.suspend(() => {
  const needle = Buffer.from(hashPart, "latin1")
  const hits: Array<ReferenceHit> = []
  let total = 0
  const names: Array<string> = []
  const open: Array<string | undefined> = []
  let file: string | undefined
  /** The last bytes of the current file seen (a hit's context), and the file offset of their first byte. */
  let window = new Uint8Array(0)
  let windowStart = 0
  /** Hits whose text after them has not arrived yet (file offsets). */
  let pending: Array<number> = []
  const keep = context + hashLength + context
  const record = (hit: ReferenceHit) => {
    total++
    if (hits.length < maxHits) hits.push(hit)
  }
  const here = () => names.length === 0 ? "" : `/${names.join("/")}`
  /** Records the pending hits whose context is in `data` (all of them at the end of the file). */
  const settle = (data: Uint8Array, base: number, atEnd: boolean) => {
    const end = base + data.length
    pending = pending.filter((at) => {
      if (!atEnd && at + hashLength + context > end) return true
      record({
        file: file!,
        kind: "regular",
        offset: at,
        snippet: printable(data.subarray(Math.max(0, at - context - base), Math.min(data.length, at + hashLength + context - base)))
      })
      return false
    })
  }
  const onEvent = (event: NarEvent) => {
    switch (event._tag) {
      case "Directory": open.push(undefined); break
      case "Entry":
        names.push(decoder.decode(event.name))
        break
      case "DirectoryEnd":
        open.pop()
        if (open.length > 0) names.pop()
        break
      case "File":
        file = here()
        window = new Uint8Array(0)
        windowStart = 0
        break
      case "Contents": {
        const data = window.length > 0 ? concat(window, event.bytes) : event.bytes
        // Occurrences that start in the window were found before, unless they run into this chunk.
        const buffer = Buffer.from(data.buffer, data.byteOffset, data.length)
        for (let at = buffer.indexOf(needle, Math.max(0, window.length - (hashLength - 1))); at !== -1; at = buffer.indexOf(needle, at + 1)) {
          pending.push(windowStart + at)
        }
        settle(data, windowStart, false)
        const kept = Math.min(data.length, keep)
        windowStart += data.length - kept
        window = data.slice(data.length - kept)
        break
      }
      case "FileEnd":
        settle(window, windowStart, true)
        file = undefined
        if (open.length > 0) names.pop()
        break
      case "Symlink": {
        const target = Buffer.from(event.target)
        for (let at = target.indexOf(needle); at !== -1; at = target.indexOf(needle, at + 1)) {
          record({ file: here(), kind: "symlink", offset: at, snippet: printable(target) })
        }
        if (open.length > 0) names.pop()
        break
      }
    }
  }
  return Stream.runForEachArray(events, (batch) => Effect.sync(() => { for (const event of batch) onEvent(event) })).pipe(
    Effect.map(() => ({ hits, total })))
})
