/**
 * Nix keeps strings in `std::map`/`std::set`, ordered by their bytes. JavaScript compares UTF-16
 * code units, which differs for characters above U+FFFF versus U+E000–U+FFFF, and for bytes that
 * are not UTF-8 (kept as escapes, see ../byte-string.ts); this compares by the bytes.
 */
import { compare } from "../byte-string.ts"

export const compareUtf8 = compare

/** Sorted, without duplicates, in Nix's (byte) order. */
export const sortedUnique = (xs: Iterable<string>): Array<string> => [...new Set(xs)].sort(compareUtf8)

/** The entries of a map sorted by key in Nix's order. */
export const sortedEntries = <V>(map: ReadonlyMap<string, V>): Array<[string, V]> =>
  [...map.entries()].sort(([a], [b]) => compareUtf8(a, b))
