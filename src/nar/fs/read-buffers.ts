/**
 * Buffers that restores from a descriptor read NARs into, shared by every restore of the process and
 * kept between restores: a restore reads into its first buffer from one pool, which always gives one
 * (a restore cannot progress without it), and reads ahead into more from another only while few of
 * those are lent out, so one big restore alone reads ahead while many at once make do with one each.
 *
 * Before, every restore allocated a ring of four fresh 1 MiB buffers, memory outside the JS heap that
 * only a full collection frees: copying bench/serve's closure (373 NARs of 1 KiB–100 MiB) from a
 * file cache, 16 at a time, peaked at 184–215 MiB. Pooled, that copy peaked at 108 MiB with 1 MiB
 * buffers and 93 MiB with 256 KiB ones, but one big restore alone (`b3 nar restore` of 1 GiB) took
 * more CPU with 256 KiB reads: hence small first buffers and big read-ahead ones (95 MiB).
 */
export class ReadBuffers {
  readonly #free: Array<Buffer> = []
  #lent = 0
  readonly #size: number
  readonly #spare: number

  /** Buffers of `size` bytes; `spare`: buffers kept free at most, and lent at most unless asked with `always`. */
  constructor(size: number, spare: number) {
    this.#size = size
    this.#spare = spare
  }

  /** A buffer (free or new): always when `always`, otherwise only while fewer than `spare` are lent. */
  take(always: boolean): Buffer | undefined {
    if (!always && this.#lent >= this.#spare) return undefined
    this.#lent++
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#size)
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
