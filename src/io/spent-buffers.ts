/**
 * Frees a node:zlib compressor's output buffers as soon as they are spent, rather than leaving them
 * to the garbage collector. A zlib stream writes its output into a buffer of its `chunkSize` and
 * hands out views of it, then starts a fresh buffer; the old one is spent once the stream has moved
 * on and every view of it has been written out. A spent buffer is detached
 * (`ArrayBuffer.prototype.transfer(0)`), which gives its memory back at once.
 *
 * Why: each of those buffers is held by a small JavaScript object, and little else is allocated
 * while compressing, so the collector runs rarely; in bench/serve (`b3 serve --compression zstd`,
 * 16 clients) 20-40 MiB of spent 256 KiB buffers waited for it at a time.
 *
 * Only buffers at least `minBytes` long are detached: smaller ones may come from Node's shared
 * Buffer pool, which other code is still using.
 */
const minBytes = 64 << 10

export class SpentBuffers {
  /** The buffer the stream writes into now (the last chunk's). */
  private current: ArrayBufferLike | undefined
  /** Views of each buffer handed out and not written yet. */
  private readonly unwritten = new Map<ArrayBufferLike, number>()
  /** Buffers the stream has moved past (or ended with): free once their views are written. */
  private readonly done = new Set<ArrayBufferLike>()

  /** Takes note of an output chunk about to be written; returns what to call once it is. */
  track(chunk: Uint8Array): () => void {
    const buffer = chunk.buffer
    if (buffer.byteLength < minBytes) return noop
    if (buffer !== this.current) {
      if (this.current !== undefined) this.finish(this.current)
      this.current = buffer
    }
    this.unwritten.set(buffer, (this.unwritten.get(buffer) ?? 0) + 1)
    return () => {
      const left = this.unwritten.get(buffer)! - 1
      if (left > 0) return void this.unwritten.set(buffer, left)
      this.unwritten.delete(buffer)
      if (this.done.delete(buffer)) detach(buffer)
    }
  }

  /** The stream ended: its last buffer is spent too. */
  end(): void {
    if (this.current !== undefined) this.finish(this.current)
    this.current = undefined
  }

  private finish(buffer: ArrayBufferLike) {
    if (this.unwritten.has(buffer)) this.done.add(buffer)
    else detach(buffer)
  }
}

const noop = () => {}

const detach = (buffer: ArrayBufferLike) => {
  // (a buffer that cannot be detached is left to the collector)
  try { (buffer as ArrayBuffer).transfer(0) } catch { /* not detachable */ }
}
