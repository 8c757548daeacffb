/**
 * Cuts a NAR into the leaves of its IPFS file DAG so that the same file gives the same leaves in
 * any NAR. Two kinds of leaf alternate:
 *
 * - framing: the NAR's own bytes between large files (magic, tokens, names, symlink targets,
 *   padding, and the contents of small files), cut every `chunkSize` bytes;
 * - file contents: each file of at least `inlineBelow` bytes, cut into `chunkSize` pieces starting
 *   at the file's first byte, so its leaves do not depend on where the file sits in the NAR.
 *
 * The leaves concatenated are the NAR, byte for byte. Pure and incremental: `push` each chunk,
 * then `end`; memory is two `chunkSize` buffers whatever the NAR's size. The leaves depend only on
 * the NAR's bytes, not on how its stream is chunked, so the same NAR always gives the same DAG. The NAR is decoded
 * (strictly) on the way: a malformed one yields the decoder's BadNar.
 */
import { NarDecoder, type BadNar, type NarEvent } from "b3/plugin"

export interface SegmentOptions {
  /** Leaf size (default 256 KiB, the UnixFS default). */
  readonly chunkSize?: number
  /** Files smaller than this stay inside the framing leaves (default 4 KiB). */
  readonly inlineBelow?: number
}

export const defaultChunkSize = 256 * 1024
export const defaultInlineBelow = 4096

/** A leaf ready to be stored: a fresh copy, never reused by the segmenter. */
export type Leaf = Uint8Array

/**
 * A buffer of up to `size` bytes that hands out a copy each time it fills (or is flushed). It
 * grows as needed, so a small NAR does not cost two whole leaves of memory.
 */
class LeafBuffer {
  private buffer = new Uint8Array(0)
  private fill = 0
  private readonly size: number
  constructor(size: number) { this.size = size }

  append(bytes: Uint8Array, out: Array<Leaf>) {
    let p = 0
    while (p < bytes.length) {
      const take = Math.min(this.size - this.fill, bytes.length - p)
      if (this.fill + take > this.buffer.length) {
        const grown = new Uint8Array(Math.min(this.size, Math.max(2 * this.buffer.length, this.fill + take, 4096)))
        grown.set(this.buffer.subarray(0, this.fill))
        this.buffer = grown
      }
      this.buffer.set(bytes.subarray(p, p + take), this.fill)
      this.fill += take
      p += take
      if (this.fill === this.size) this.flush(out)
    }
  }

  flush(out: Array<Leaf>) {
    if (this.fill > 0) out.push(this.buffer.slice(0, this.fill))
    this.fill = 0
  }
}

export class NarSegmenter {
  private readonly decoder = new NarDecoder()
  private readonly events: Array<NarEvent> = []
  private readonly framing: LeafBuffer
  private readonly file: LeafBuffer
  private readonly inlineBelow: number
  /** Inside a file that gets leaves of its own. */
  private inFile = false

  constructor(options: SegmentOptions = {}) {
    const chunkSize = options.chunkSize ?? defaultChunkSize
    this.framing = new LeafBuffer(chunkSize)
    this.file = new LeafBuffer(chunkSize)
    this.inlineBelow = options.inlineBelow ?? defaultInlineBelow
  }

  /** The leaves completed by this chunk, or the NAR's first defect. */
  push(chunk: Uint8Array): Array<Leaf> | BadNar {
    const leaves: Array<Leaf> = []
    const error = this.decoder.push(chunk, this.events)
    if (error) { this.events.length = 0; return error }
    // The decoder's Contents events are views of `chunk`: their offsets split it into framing and file bytes.
    let pos = 0
    for (const event of this.events) {
      if (event._tag === "File") {
        // The framing before the file ends at its first Contents event (it may be in a later chunk).
        if (event.size >= this.inlineBelow) this.inFile = true
      } else if (event._tag === "Contents" && this.inFile) {
        const at = event.bytes.byteOffset - chunk.byteOffset
        this.framing.append(chunk.subarray(pos, at), leaves)
        this.framing.flush(leaves)
        this.file.append(event.bytes, leaves)
        pos = at + event.bytes.length
      } else if (event._tag === "FileEnd" && this.inFile) {
        this.file.flush(leaves)
        this.inFile = false
      }
    }
    this.events.length = 0
    this.framing.append(chunk.subarray(pos), leaves)
    return leaves
  }

  /** The last leaves, once the whole NAR has been pushed. */
  end(): Array<Leaf> | BadNar {
    const error = this.decoder.end()
    if (error) return error
    const leaves: Array<Leaf> = []
    this.framing.flush(leaves)
    return leaves
  }
}
