/**
 * The pieces of the WebAssembly binary format that the hand-assembled loops (FastCDC's cutter,
 * the super-feature sampler) are written with: LEB128 numbers, sections, vectors and names.
 */

/** An unsigned LEB128 number. */
export const uleb = (value: number): Array<number> => {
  const out: Array<number> = []
  let n = value >>> 0
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}

/** A section: its id, then its body's length and the body. */
export const section = (id: number, body: ReadonlyArray<number>) => [id, ...uleb(body.length), ...body]

/** A vector: the number of items, then the items. */
export const vector = (items: ReadonlyArray<ReadonlyArray<number>>) => [...uleb(items.length), ...items.flat()]

/** A name (ASCII). */
export const name = (text: string) => [...uleb(text.length), ...Array.from(text, (c) => c.charCodeAt(0))]
