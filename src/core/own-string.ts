/**
 * Strings kept for long: V8 makes a substring of 13 or more characters a view of the string it
 * was cut from (which it keeps alive whole), and a concatenation of 13 or more a pair of pointers
 * to its parts (flattened into a third string when hashed); a string kept per path for the whole of
 * a large copy should be neither.
 */

/** `s` as a flat string of its own (neither a view of a larger string nor a concatenation). */
export const ownString = (s: string): string => s.length < 13 ? s : Buffer.from(s, "utf8").toString("utf8")
