/**
 * The buffers that restores from a descriptor read NARs into, shared by every restore of the
 * process. A restore takes its first buffer whatever happens (it cannot progress without one) and
 * more only while few are lent out, so one big restore alone reads ahead into several while many at
 * once make do with one each; buffers come back when the restore's writes are done and are kept for
 * the next. Before, every restore allocated a ring of four fresh 1 MiB buffers, memory outside the
 * JS heap that only a full collection frees: copying bench/serve's closure (373 NARs of 1 KiB–100 MiB)
 * from a file cache, 16 at a time, peaked at 184–215 MiB and faulted in fresh pages for every NAR;
 * pooled 1 MiB buffers 108 MiB, pooled 256 KiB buffers 93 MiB (128 KiB: 91, for 10% more user CPU).
 * The 1 GiB path of bench/cache took 0.83–0.99 s of user CPU with 256 KiB against 0.67–0.89 with
 * 1 MiB, and less system time (0.6–1.4 s against 2.0–2.7), alternating.
 */
export const readBufferSize = 256 << 10

export class ReadBuffers {
  readonly #free: Array<Buffer> = []
  #lent = 0
  readonly #spare: number

  /** `spare`: buffers lent beyond each restore's first, at most, and kept free at most. */
  constructor(spare: number) {
    this.#spare = spare
  }

  /** A buffer (free or new): always when `first`, otherwise only while fewer than `spare` are lent. */
  take(first: boolean): Buffer | undefined {
    if (!first && this.#lent >= this.#spare) return undefined
    this.#lent++
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(readBufferSize)
  }

  /** Takes back buffers that no read or write uses any more. */
  give(buffers: ReadonlyArray<Buffer>): void {
    this.#lent -= buffers.length
    for (const buffer of buffers) if (this.#free.length < this.#spare) this.#free.push(buffer)
  }

  /** Buffers lent out now (for tests). */
  get lent(): number {
    return this.#lent
  }

  /** Buffers kept free now (for tests). */
  get free(): number {
    return this.#free.length
  }
}
