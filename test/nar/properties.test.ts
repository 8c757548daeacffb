/**
 * Properties of the pure NAR code: Dump → NAR → Dump round trips, decoding independent of
 * chunking, the decoder accepting exactly the canonical encoding, and no input (random bytes,
 * mutated archives, random event sequences) ever making it throw or hang.
 */
import { Effect, Result, Stream } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeNar, decodeNarBytes, NarDecoder } from "../../src/nar/decode.ts"
import * as Tree from "../../src/nar/tree.ts"
import { encodeNar, encodeNarBytes, NarEncoder } from "../../src/nar/encode.ts"
import { BadNar } from "../../src/nar/errors.ts"
import * as Ev from "../../src/nar/events.ts"
import { arbDump, arbNarEdits, chunked, mutateNar, NarBuilder } from "./support.ts"

const magicHeader = new NarBuilder().magic().bytes()

const arbNar = arbDump.map((d) => Result.getOrThrow(Tree.toNar(d)))
const arbCuts = fc.array(fc.nat(), { maxLength: 12 })

/** The outcome of decoding in chunks, as comparable data: the error, or the re-encoded archive. */
const outcome = (chunks: ReadonlyArray<Uint8Array>) => {
  const decoder = new NarDecoder()
  const events: Array<Ev.NarEvent> = []
  let error: BadNar | undefined
  for (const chunk of chunks) if ((error = decoder.push(chunk, events))) break
  error ??= decoder.end()
  if (error) return { error: { offset: error.offset, reason: error.reason } }
  return { bytes: Buffer.from(encodeNarBytes(events).bytes).toString("hex") }
}

/** Mutations of a valid archive: flipped and overwritten bytes, cuts, insertions, huge length fields. */
const arbMutated = fc.tuple(arbNar, arbNarEdits).map(([nar, edits]) => mutateNar(nar, edits))

describe("NAR properties", () => {
  it("Dump → NAR → Dump gives the same dump, and NAR → Dump → NAR the same bytes", () => {
    fc.assert(fc.property(arbDump, (dump) => {
      const nar = Result.getOrThrow(Tree.toNar(dump))
      const back = Result.getOrThrow(Tree.fromNar(nar))
      expect(back).toEqual(dump)
      expect(Buffer.from(Result.getOrThrow(Tree.toNar(back))).equals(nar)).toBe(true)
    }), { numRuns: 300 })
  })

  it("decoding does not depend on how the bytes are chunked", () => {
    fc.assert(fc.property(arbNar, arbCuts, (nar, cuts) => {
      expect(outcome(chunked(nar, cuts))).toEqual(outcome([nar]))
      expect(outcome([nar]).bytes).toBe(Buffer.from(nar).toString("hex"))
    }), { numRuns: 300 })
  })

  it("the decoder keeps nothing of a chunk after push: refilling one buffer for every chunk decodes the same", () => {
    fc.assert(fc.property(arbNar, arbCuts, (nar, cuts) => {
      const decoder = new NarDecoder()
      const encoder = new NarEncoder()
      const buffer = Buffer.alloc(nar.length + 1) // a Buffer: its slice() is a view, a classic trap
      const events: Array<Ev.NarEvent> = []
      for (const chunk of chunked(nar, cuts)) {
        buffer.fill(0xee)
        buffer.set(chunk)
        expect(decoder.push(buffer.subarray(0, chunk.length), events)).toBeUndefined()
        // contents are views of the buffer: copy them before the next refill (the encoder keeps big ones by reference)
        for (const event of events.splice(0)) expect(encoder.push(event._tag === "Contents" ? Ev.contents(new Uint8Array(event.bytes)) : event)).toBeUndefined()
      }
      expect(decoder.end()).toBeUndefined()
      expect(encoder.end()).toBeUndefined()
      expect(Buffer.concat(encoder.writer.take().map((c) => Buffer.from(c))).equals(nar)).toBe(true)
    }), { numRuns: 500 })
  })

  it("random bytes never throw: always a BadNar inside the input (or, rarely, a valid archive)", () => {
    const arbBytes = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      // random bytes behind a valid header get further into the grammar
      fc.uint8Array({ maxLength: 300 }).map((b) => new Uint8Array(Buffer.concat([magicHeader, b])))
    )
    fc.assert(fc.property(arbBytes, arbCuts, (bytes, cuts) => {
      const whole = outcome([bytes])
      if (whole.error) {
        expect(whole.error.offset).toBeGreaterThanOrEqual(0)
        expect(whole.error.offset).toBeLessThanOrEqual(bytes.length)
      }
      expect(outcome(chunked(bytes, cuts))).toEqual(whole)
    }), { numRuns: 1000 })
  })

  it("mutated archives never throw; what is accepted is exactly canonical (re-encodes to the same bytes)", () => {
    fc.assert(fc.property(arbMutated, arbCuts, (bytes, cuts) => {
      const whole = outcome([bytes])
      if (whole.error) {
        expect(whole.error.offset).toBeLessThanOrEqual(bytes.length)
      } else {
        expect(whole.bytes).toBe(Buffer.from(bytes).toString("hex"))
      }
      expect(outcome(chunked(bytes, cuts))).toEqual(whole)
    }), { numRuns: 1000 })
  })

  it("the encoder never throws on arbitrary event sequences and only writes archives that decode back to them", () => {
    const arbEvent: fc.Arbitrary<Ev.NarEvent> = fc.oneof(
      fc.constant(Ev.directory), fc.constant(Ev.directoryEnd), fc.constant(Ev.fileEnd),
      fc.constantFrom("a", "b", "", ".", "x/y", "é").map(Ev.entry),
      fc.tuple(fc.integer({ min: -1, max: 4 }), fc.boolean()).map(([n, x]) => Ev.file(n, x)),
      fc.uint8Array({ maxLength: 4 }).map(Ev.contents),
      fc.constantFrom("t", "", "a\0b").map(Ev.symlink)
    )
    fc.assert(fc.property(fc.array(arbEvent, { maxLength: 12 }), (events) => {
      const { bytes, error } = encodeNarBytes(events)
      if (error) {
        expect(error).toBeInstanceOf(BadNar)
        return
      }
      const decoded = decodeNarBytes(bytes)
      expect(decoded.error).toBeUndefined()
      expect(Buffer.from(encodeNarBytes(decoded.events).bytes).equals(bytes)).toBe(true)
    }), { numRuns: 1000 })
  })

  it("decodeNar and encodeNar as streams round-trip with random chunking", async () => {
    await fc.assert(fc.asyncProperty(arbNar, arbCuts, async (nar, cuts) => {
      const out = await Effect.runPromise(Stream.runCollect(encodeNar(decodeNar(Stream.fromIterable(chunked(nar, cuts))), { chunkSize: 64 })))
      expect(Buffer.concat([...out]).equals(nar)).toBe(true)
    }), { numRuns: 100 })
  })
})
