/** The validating decoder on a corpus of malformed NARs, truncations at every offset, and huge length fields. */
import { Effect, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { decodeNar, decodeNarBytes, NarDecoder } from "../../src/nar/decode.ts"
import { encodeNarBytes } from "../../src/nar/encode.ts"
import { BadNar } from "../../src/nar/errors.ts"
import type { NarEvent } from "../../src/nar/events.ts"
import { malformed, sampleNar } from "./corpus.ts"
import { chunked, NarBuilder } from "./support.ts"

/** Decodes `chunks` one by one with a fresh decoder; the first error, if any. */
const decodeChunks = (chunks: ReadonlyArray<Uint8Array>, decoder = new NarDecoder()): { events: Array<NarEvent>; error: BadNar | undefined } => {
  const events: Array<NarEvent> = []
  for (const chunk of chunks) {
    const error = decoder.push(chunk, events)
    if (error) return { events, error }
  }
  return { events, error: decoder.end() }
}

const byteByByte = (bytes: Uint8Array) => Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))

describe("NAR decoder: malformed archives", () => {
  it("has a case for every rule", () => {
    expect(malformed.length).toBeGreaterThanOrEqual(40)
    expect(new Set(malformed.map((c) => c.name)).size).toBe(malformed.length)
  })

  for (const c of malformed) {
    it(`rejects ${c.name} at byte ${c.offset}`, () => {
      const { error } = decodeNarBytes(c.bytes)
      expect(error).toBeInstanceOf(BadNar)
      expect(error!.offset).toBe(c.offset)
      expect(error!.reason).toMatch(c.reason)
      expect(error!.message).toBe(`bad NAR at byte ${c.offset}: ${error!.reason}`)
      // the same error whatever the chunking
      const single = decodeChunks(byteByByte(c.bytes)).error
      expect(single?.offset).toBe(c.offset)
      expect(single?.reason).toBe(error!.reason)
    })
  }

  it("rejects through the stream API too, failing the stream with the same BadNar", async () => {
    for (const c of malformed) {
      const chunks = chunked(c.bytes, [3, 17, 64, 65, 200])
      const exit = await Effect.runPromise(Effect.result(Stream.runDrain(decodeNar(Stream.fromIterable(chunks)))))
      expect(exit._tag).toBe("Failure")
      if (exit._tag === "Failure") {
        expect(exit.failure).toBeInstanceOf(BadNar)
        expect((exit.failure as BadNar).offset).toBe(c.offset)
      }
    }
  })
})

describe("NAR decoder: truncation", () => {
  const nar = sampleNar()

  it("accepts the whole sample and re-encodes it to the same bytes", () => {
    const { events, error } = decodeNarBytes(nar)
    expect(error).toBeUndefined()
    expect(Buffer.from(encodeNarBytes(events).bytes).equals(nar)).toBe(true)
  })

  it("rejects the sample cut at every byte offset (so at every field), naming the cut as the offset", () => {
    for (let cut = 0; cut < nar.length; cut++) {
      const { error } = decodeNarBytes(nar.subarray(0, cut))
      expect(error, `cut at ${cut}`).toBeInstanceOf(BadNar)
      expect(error!.offset).toBe(cut)
      expect(error!.reason).toMatch(/^truncated archive: expected /)
    }
  })

  it("says which field is missing at field boundaries", () => {
    const file = new NarBuilder().magic().strs("(", "type", "regular", "contents").bytes()
    expect(decodeNarBytes(file).error!.reason).toBe("truncated archive: expected file contents")
    expect(decodeNarBytes(file.subarray(0, 30)).error!.reason).toBe("truncated archive: expected the rest of '('")
    expect(decodeNarBytes(new NarBuilder().magic().bytes()).error!.reason).toBe("truncated archive: expected '('")
  })
})

describe("NAR decoder: memory never follows a length field", () => {
  it("streams a file declared as 2^50 bytes without buffering it: contents are views of the input", () => {
    const header = new NarBuilder().magic().strs("(", "type", "regular", "contents").u64(2n ** 50n).bytes()
    const decoder = new NarDecoder()
    const events: Array<NarEvent> = []
    expect(decoder.push(header, events)).toBeUndefined()
    expect(events).toEqual([{ _tag: "File", executable: false, size: 2 ** 50 }])
    const chunk = new Uint8Array(1 << 20)
    const before = process.memoryUsage().arrayBuffers
    for (let i = 0; i < 64; i++) {
      events.length = 0
      expect(decoder.push(chunk, events)).toBeUndefined()
      expect(events.length).toBe(1)
      const contents = events[0] as Extract<NarEvent, { _tag: "Contents" }>
      expect(contents.bytes.buffer).toBe(chunk.buffer)
    }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 << 20)
    expect(decoder.end()!.reason).toBe("truncated archive: expected the rest of file contents")
  })

  it("rejects names, targets and tokens by their length field before reading them", () => {
    for (const bytes of [
      new NarBuilder().magic().u64(2n ** 62n).bytes(),
      new NarBuilder().magic().openDir().strs("entry", "(", "name").u64(2n ** 40n).bytes(),
      new NarBuilder().magic().strs("(", "type", "symlink", "target").u64(2n ** 40n).bytes()
    ]) {
      const { error } = decodeNarBytes(bytes)
      expect(error!.offset).toBe(bytes.length - 8)
    }
  })

  it("honours smaller limits", () => {
    const limits = { maxNameLength: 4, maxTargetLength: 3, maxDepth: 2 }
    const deep = new NarBuilder().magic().openDir().entry("a", (x) => x.openDir().entry("b", (y) => y.openDir().close()).close()).close().bytes()
    expect(decodeNarBytes(deep, limits).error!.reason).toBe("directories nested deeper than 2 levels")
    const longName = new NarBuilder().magic().openDir().entry("abcde", (x) => x.file("")).close().bytes()
    expect(decodeNarBytes(longName, limits).error!.reason).toBe("entry name of 5 bytes is longer than 4")
    const longTarget = new NarBuilder().magic().symlink("abcd").bytes()
    expect(decodeNarBytes(longTarget, limits).error!.reason).toBe("symlink target of 4 bytes is longer than 3")
  })
})
