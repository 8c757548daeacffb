/**
 * Checks, while a NAR streams, that a path claiming a content address really has it: its path
 * is the one the address gives, and its contents hash to the address's hash (the NAR for
 * `fixed:r:`, the single file's bytes for `fixed:` and `text:`). Nix accepts such paths without a
 * signature, so the check has to be real.
 */
import { Effect, Stream } from "effect"
import * as ContentAddress from "../core/content-address.ts"
import * as Hash from "../core/hash.ts"
import * as StorePath from "../core/store-path.ts"
import { NarDecoder } from "../nar/decode.ts"
import type { NarEvent } from "../nar/events.ts"
import { HashMismatch } from "./store-errors.ts"
import type { PathInfo } from "./path-info.ts"

/** Whether the path is the one its content address, name and references give. */
export const pathMatchesContentAddress = (info: PathInfo, storeDir: string): boolean => {
  if (!info.ca) return false
  const self = StorePath.baseName(info.path)
  const others = info.references.filter((r) => StorePath.baseName(r) !== self)
  const computed = ContentAddress.storePath(info.ca, info.path.name, {
    references: others, hasSelfReference: others.length !== info.references.length, storeDir
  })
  return StorePath.equals(computed, info.path)
}

/** Passes the NAR through; fails at the end unless its contents match `info.ca`. */
export const checkContentAddress = <E, R>(info: PathInfo, storeDir: string, nar: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | HashMismatch, R> => {
  const ca = info.ca
  if (!ca) return nar
  const path = StorePath.print(info.path, storeDir)
  return Stream.suspend(() => {
    const hasher = Hash.hasher(ca.hash.algorithm)
    const flat = ca._tag === "Text" || ca.method === "flat"
    const decoder = flat ? new NarDecoder() : undefined
    const events: Array<NarEvent> = []
    let shape = "a single regular file"
    let first = true
    const tapped = Stream.map(nar, (chunk) => {
      if (!decoder) { hasher.update(chunk); return chunk }
      decoder.push(chunk, events)
      for (const event of events) {
        if (first && event._tag !== "File") shape = "not a single regular file"
        first = false
        if (event._tag === "Contents") hasher.update(event.bytes)
      }
      events.length = 0
      return chunk
    })
    const finish = Effect.suspend(() => {
      const actual = hasher.digest()
      if (flat && shape !== "a single regular file") {
        return Effect.fail(new HashMismatch({ path, what: "content address", expected: ContentAddress.print(ca), actual: shape }))
      }
      return Hash.equals(actual, ca.hash) ? Effect.void
        : Effect.fail(new HashMismatch({ path, what: "content address", expected: ContentAddress.print(ca), actual: Hash.print(actual, "base32") }))
    })
    return Stream.concat(tapped, Stream.drain(Stream.fromEffect(finish)))
  })
}
