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
  const pending: Array<string | undefined> = []
  let file: string | undefined
  /** Bytes of the current file before the current chunk that a hit or its snippet may still need. */
  let carry = new Uint8Array(0)
  /** Offset in the file of carry's first byte. */
  let carryStart = 0
  const record = (hit: ReferenceHit) => {
    total++
    if (hits.length < maxHits) hits.push(hit)
  }
  const here = () => names.length === 0 ? "" : `/${names.join("/")}`
  const scan = (data: Uint8Array, base: number, from: number) => {
    const buffer = Buffer.from(data.buffer, data.byteOffset, data.length)
    for (let at = buffer.indexOf(needle, from); at !== -1; at = buffer.indexOf(needle, at + 1)) {
      record({
        file: file!,
        kind: "regular",
        offset: base + at,
        snippet: printable(data.subarray(Math.max(0, at - context), Math.min(data.length, at + hashLength + context)))
      })
    }
  }
  const onEvent = (event: NarEvent) => {
    switch (event._tag) {
      case "Directory": pending.push(undefined); break
      case "Entry":
        pending[pending.length - 1] = decoder.decode(event.name)
        names.push(pending[pending.length - 1]!)
        break
      case "DirectoryEnd":
        pending.pop()
        if (pending.length > 0) names.pop()
        break
      case "File":
        file = here()
        carry = new Uint8Array(0)
        carryStart = 0
        break
      case "Contents": {
        // Hits that start in the carried bytes were reported already unless they end in this chunk.
        const data = carry.length > 0 ? concat(carry, event.bytes) : event.bytes
        scan(data, carryStart, Math.max(0, carry.length - (hashLength - 1)))
        const keep = Math.min(data.length, hashLength - 1 + context)
        carryStart += data.length - keep
        carry = data.slice(data.length - keep)
        break
      }
      case "FileEnd":
        file = undefined
        if (pending.length > 0) names.pop()
        break
      case "Symlink": {
        const target = Buffer.from(event.target)
        for (let at = target.indexOf(needle); at !== -1; at = target.indexOf(needle, at + 1)) {
          record({ file: here(), kind: "symlink", offset: at, snippet: printable(target) })
        }
        if (pending.length > 0) names.pop()
        break
      }
    }
  }
  return Stream.runForEachArray(events, (batch) => Effect.sync(() => { for (const event of batch) onEvent(event) })).pipe(
    Effect.map(() => ({ hits, total })))
})
