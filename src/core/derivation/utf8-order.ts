/**
 * Nix keeps strings in `std::map`/`std::set`, ordered by their UTF-8 bytes. JavaScript compares
 * UTF-16 code units, which differs for characters above U+FFFF versus U+E000–U+FFFF; this compares
 * by code point, which is the same order as UTF-8 bytes.
 */
export const compareUtf8 = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // A surrogate (a code point above U+FFFF) sorts after every BMP code unit.
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (xs !== ys) return xs ? 1 : -1
    return x < y ? -1 : 1
  }
  return a.length - b.length
}

/** Sorted, without duplicates, in Nix's (UTF-8 byte) order. */
export const sortedUnique = (xs: Iterable<string>): Array<string> => [...new Set(xs)].sort(compareUtf8)

/** The entries of a map sorted by key in Nix's order. */
export const sortedEntries = <V>(map: ReadonlyMap<string, V>): Array<[string, V]> =>
  [...map.entries()].sort(([a], [b]) => compareUtf8(a, b))
