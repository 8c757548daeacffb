/**
 * Events back to NAR bytes. The encoder checks the event grammar as strictly as the decoder checks
 * bytes (valid, strictly ascending names; contents adding up to the declared size; one root), so
 * every byte stream it produces decodes again. Errors are `BadNar` at the output offset.
 */
import { Stream } from "effect"
import { BadNar } from "./errors.ts"
import * as Ev from "./events.ts"
import { NarWriter } from "./nar-writer.ts"
import { transduce } from "./transduce.ts"

const NODE = 0, FILE = 1, DIR = 2, DONE = 3

export class NarEncoder {
  readonly writer: NarWriter
  private readonly limits: Ev.NarLimits
  private state = NODE
  private remaining = 0
  private size = 0
  private readonly prevNames: Array<Uint8Array | null> = []
  private failed: BadNar | undefined

  constructor(limits: Ev.NarLimits = Ev.defaultLimits, chunkSize?: number) {
    this.limits = limits
    this.writer = new NarWriter(chunkSize)
    this.writer.raw(NarWriter.seq.magic)
  }

  private fail(reason: string): BadNar {
    this.failed = new BadNar({ offset: this.writer.written, reason })
    return this.failed
  }

  private nodeDone(): void {
    if (this.prevNames.length === 0) this.state = DONE
    else {
      this.writer.raw(NarWriter.seq.close)
      this.state = DIR
    }
  }

  push(event: Ev.NarEvent): BadNar | undefined {
    if (this.failed) return this.failed
    const w = this.writer
    switch (event._tag) {
      case "File":
        if (this.state !== NODE) return this.unexpected(event)
        if (!Number.isSafeInteger(event.size) || event.size < 0) return this.fail(`invalid file size ${event.size}`)
        w.raw(event.executable ? NarWriter.seq.executable : NarWriter.seq.regular)
        w.u64(event.size)
        this.size = this.remaining = event.size
        this.state = FILE
        return undefined
      case "Contents":
        if (this.state !== FILE) return this.unexpected(event)
        if (event.bytes.length > this.remaining) return this.fail(`file contents exceed the declared size ${this.size}`)
        this.remaining -= event.bytes.length
        w.raw(event.bytes)
        return undefined
      case "FileEnd":
        if (this.state !== FILE) return this.unexpected(event)
        if (this.remaining !== 0) return this.fail(`file ended ${this.remaining} bytes short of its declared size ${this.size}`)
        w.pad(this.size)
        w.raw(NarWriter.seq.close)
        this.nodeDone()
        return undefined
      case "Symlink": {
        if (this.state !== NODE) return this.unexpected(event)
        const reason = Ev.invalidTargetReason(event.target, this.limits.maxTargetLength)
        if (reason) return this.fail(reason)
        w.raw(NarWriter.seq.symlink)
        w.string(event.target)
        w.raw(NarWriter.seq.close)
        this.nodeDone()
        return undefined
      }
      case "Directory":
        if (this.state !== NODE) return this.unexpected(event)
        if (this.prevNames.length >= this.limits.maxDepth) return this.fail(`directories nested deeper than ${this.limits.maxDepth} levels`)
        w.raw(NarWriter.seq.directory)
        this.prevNames.push(null)
        this.state = DIR
        return undefined
      case "Entry": {
        if (this.state !== DIR) return this.unexpected(event)
        const reason = Ev.invalidNameReason(event.name, this.limits.maxNameLength)
        if (reason) return this.fail(reason)
        const depth = this.prevNames.length - 1
        const prev = this.prevNames[depth]!
        if (prev !== null && Ev.compareBytes(prev, event.name) >= 0) {
          return this.fail(`entry '${new TextDecoder().decode(event.name)}' is not after '${new TextDecoder().decode(prev)}' (names must be unique and sorted bytewise)`)
        }
        this.prevNames[depth] = event.name
        w.raw(NarWriter.seq.entryName)
        w.string(event.name)
        w.raw(NarWriter.seq.node)
        this.state = NODE
        return undefined
      }
      case "DirectoryEnd":
        if (this.state !== DIR) return this.unexpected(event)
        this.prevNames.pop()
        w.raw(NarWriter.seq.close)
        this.nodeDone()
        return undefined
    }
  }

  end(): BadNar | undefined {
    if (this.failed) return this.failed
    if (this.state !== DONE) return this.fail("events ended before the root node was complete")
    return undefined
  }

  private unexpected(event: Ev.NarEvent): BadNar {
    const expected = ["a node (File, Symlink or Directory)", "Contents or FileEnd", "Entry or DirectoryEnd", "nothing (the root is complete)"][this.state]
    return this.fail(`unexpected ${event._tag} event: expected ${expected}`)
  }
}

/** Encodes an event stream as NAR bytes (chunks of about `chunkSize`; big contents pass through). */
export const encodeNar = <E, R>(
  events: Stream.Stream<Ev.NarEvent, E, R>,
  options: { readonly limits?: Ev.NarLimits; readonly chunkSize?: number } = {}
): Stream.Stream<Uint8Array, E | BadNar, R> =>
  transduce(events, () => {
    const encoder = new NarEncoder(options.limits, options.chunkSize ?? 64 * 1024)
    const take = (out: Array<Uint8Array>) => {
      // hand over full chunks only, so small events coalesce
      if (encoder.writer.chunks.length > 0) for (const c of encoder.writer.chunks.splice(0)) out.push(c)
    }
    return {
      push: (event, out) => {
        const error = encoder.push(event)
        take(out)
        return error
      },
      end: (out) => {
        const error = encoder.end()
        if (error === undefined) for (const c of encoder.writer.take()) out.push(c)
        return error
      }
    }
  })

/** Encodes events held in memory into one byte array. */
export const encodeNarBytes = (events: Iterable<Ev.NarEvent>, limits?: Ev.NarLimits): { bytes: Uint8Array; error: BadNar | undefined } => {
  const encoder = new NarEncoder(limits)
  for (const event of events) {
    const error = encoder.push(event)
    if (error) return { bytes: new Uint8Array(0), error }
  }
  const error = encoder.end()
  return { bytes: error ? new Uint8Array(0) : Buffer.concat(encoder.writer.take()), error }
}
