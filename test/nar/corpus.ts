/**
 * Malformed NARs, each breaking one rule of the format, with where (byte offset) and why the
 * decoder must reject it. `nixAccepts` marks the few that Nix 2.8's own parser lets through (we
 * are stricter there: our decoder accepts only the canonical form).
 */
import { NarBuilder } from "./support.ts"

export interface BadCase {
  readonly name: string
  readonly bytes: Uint8Array
  readonly offset: number
  readonly reason: RegExp
  readonly nixAccepts?: boolean
}

const b = () => new NarBuilder().magic()

/** What `nix-store --restore` (2.8) lets through: it checks neither order nor trailing bytes nor depth, and skips some fields. */
const acceptedByNix = new Set([
  "regular file without contents", "'executable' twice", "symlink without a target", "entry without 'node'", "file not closed",
  "names out of order", "names in JS string order instead of byte order", "names in case-insensitive order",
  "a symlink target with NUL", "directories nested deeper than 1024 levels", "trailing bytes after the root", "a second root node"
])

/** Builds a case: `build` returns the builder and the offset where the archive goes wrong. */
const bad = (name: string, reason: RegExp, build: () => [NarBuilder, number]): BadCase => {
  const [builder, offset] = build()
  return { name, bytes: builder.bytes(), offset, reason, nixAccepts: acceptedByNix.has(name) }
}

/** Nests `depth` directories, each holding the next as entry "d". */
const nested = (builder: NarBuilder, depth: number, marks: Array<number>): NarBuilder => {
  marks.push(builder.mark)
  builder.openDir()
  if (depth > 1) builder.entry("d", (x) => nested(x, depth - 1, marks))
  return builder.close()
}

export const malformed: ReadonlyArray<BadCase> = [
  // header
  bad("empty input", /truncated archive: expected the 'nix-archive-1' header/, () => [new NarBuilder(), 0]),
  bad("wrong magic", /not a NAR/, () => [new NarBuilder().str("nix-archive-2"), 0]),
  bad("magic of the wrong length", /not a NAR/, () => [new NarBuilder().str("nix-archive-10"), 0]),
  bad("magic length field of 2^62", /not a NAR/, () => [new NarBuilder().u64(2n ** 62n), 0]),
  bad("garbage instead of a NAR", /not a NAR/, () => [new NarBuilder().raw(Buffer.from("#!/bin/sh\necho not a nar\n")), 0]),
  // padding
  bad("non-zero padding after the magic", /non-zero padding/, () => {
    const x = new NarBuilder().str("nix-archive-1", 1)
    return [x.file("a"), 8 + 13]
  }),
  bad("non-zero padding after file contents", /non-zero padding/, () => {
    const x = b().strs("(", "type", "regular", "contents")
    const at = x.mark + 8 + 3
    return [x.str("abc", 0xff).close(), at]
  }),
  bad("non-zero padding after an entry name", /non-zero padding/, () => {
    const x = b().openDir().strs("entry", "(", "name")
    const at = x.mark + 8 + 1
    return [x.str("n", 7).strs("node").file("").strs(")", ")"), at]
  }),
  bad("non-zero padding after a symlink target", /non-zero padding/, () => {
    const x = b().strs("(", "type", "symlink", "target")
    const at = x.mark + 8 + 5
    return [x.str("/tmp/", 0x20).close(), at]
  }),
  // tokens
  bad("unknown node type", /expected 'regular', 'symlink' or 'directory', got 'fifo!!!'/, () => {
    const x = b().strs("(", "type")
    const at = x.mark
    return [x.strs("fifo!!!", ")"), at]
  }),
  bad("node type of an unexpected length", /expected 'regular', 'symlink' or 'directory', got a string of 6 bytes/, () => {
    const x = b().strs("(", "type")
    const at = x.mark
    return [x.strs("socket", ")"), at]
  }),
  bad("missing opening parenthesis", /expected '\('/, () => {
    const x = b()
    const at = x.mark
    return [x.strs("type", "regular", "contents", "", ")"), at]
  }),
  bad("'executable' with a non-empty value", /expected an empty string after 'executable'/, () => {
    const x = b().strs("(", "type", "regular", "executable")
    const at = x.mark
    return [x.strs("1", "contents", "", ")"), at]
  }),
  bad("regular file without contents", /expected 'executable' or 'contents'/, () => {
    const x = b().strs("(", "type", "regular")
    const at = x.mark
    return [x.strs(")"), at]
  }),
  bad("'executable' twice", /expected 'contents'/, () => {
    const x = b().strs("(", "type", "regular", "executable", "")
    const at = x.mark
    return [x.strs("executable", "", "contents", "", ")"), at]
  }),
  bad("symlink without a target", /expected 'target'/, () => {
    const x = b().strs("(", "type", "symlink")
    const at = x.mark
    return [x.strs(")"), at]
  }),
  bad("unknown field in a directory", /expected 'entry' or '\)'/, () => {
    const x = b().openDir()
    const at = x.mark
    return [x.strs("target", "x", ")"), at]
  }),
  bad("entry without 'name'", /expected 'name'/, () => {
    const x = b().openDir().strs("entry", "(")
    const at = x.mark
    return [x.strs("node", "(", "type", "regular", "contents", "", ")", ")", ")"), at]
  }),
  bad("entry without 'node'", /expected 'node'/, () => {
    const x = b().openDir().strs("entry", "(", "name", "a")
    const at = x.mark
    return [x.strs(")", ")"), at]
  }),
  bad("entry not closed", /expected '\)'/, () => {
    const x = b().openDir().strs("entry", "(", "name", "a", "node").file("")
    const at = x.mark
    return [x.strs("entry", "(", "name", "b", "node").file("").strs(")", ")"), at]
  }),
  bad("file not closed", /expected '\)'/, () => {
    const x = b().strs("(", "type", "regular", "contents", "abc")
    const at = x.mark
    return [x.strs("contents", "abc", ")"), at]
  }),
  bad("token length field of 2^62", /expected '\(', got a string of 4611686018427387904 bytes/, () => {
    const x = b()
    const at = x.mark
    return [x.u64(2n ** 62n), at]
  }),
  // names
  ...([
    ["an empty name", "", /empty file name/],
    ["the name '.'", ".", /invalid file name '\.'/],
    ["the name '..'", "..", /invalid file name '\.\.'/],
    ["a name with '/'", "a/b", /file name contains '\/'/],
    ["the name '../escape'", "../escape", /file name contains '\/'/],
    ["the name '/'", "/", /file name contains '\/'/],
    ["a name with NUL", "a\0b", /file name contains a NUL byte/],
    ["a name of 256 bytes", "n".repeat(256), /entry name of 256 bytes is longer than 255/]
  ] as const).map(([what, name, reason]) => bad(what, reason, () => {
    const x = b().openDir().strs("entry", "(", "name")
    const at = x.mark
    return [x.str(name).strs("node").file("x").strs(")", ")"), at]
  })),
  bad("a name length field of 2^62", /entry name of 4611686018427387904 bytes is longer than 255/, () => {
    const x = b().openDir().strs("entry", "(", "name")
    return [x.u64(2n ** 62n), x.mark - 8]
  }),
  bad("names out of order", /entry 'a' is out of order/, () => {
    const x = b().openDir().entry("b", (y) => y.file("1"))
    const at = x.mark + 3 * 16
    return [x.entry("a", (y) => y.file("2")).close(), at]
  }),
  bad("names in JS string order instead of byte order", /is out of order/, () => {
    // U+1F600 sorts before U+E000 in UTF-16 but after it in UTF-8
    const x = b().openDir().entry("\u{1F600}", (y) => y.file("1"))
    const at = x.mark + 3 * 16
    return [x.entry("\uE000", (y) => y.file("2")).close(), at]
  }),
  bad("names in case-insensitive order", /entry 'B' is out of order/, () => {
    const x = b().openDir().entry("a", (y) => y.file("1"))
    const at = x.mark + 3 * 16
    return [x.entry("B", (y) => y.file("2")).close(), at]
  }),
  bad("duplicate names", /duplicate entry name 'same'/, () => {
    const x = b().openDir().entry("same", (y) => y.file("1"))
    const at = x.mark + 3 * 16
    return [x.entry("same", (y) => y.symlink("/etc/passwd")).close(), at]
  }),
  bad("duplicate name in a nested directory", /duplicate entry name 'x'/, () => {
    const x = b().openDir().strs("entry", "(", "name", "sub", "node").openDir().entry("x", (y) => y.file(""))
    const at = x.mark + 3 * 16
    return [x.entry("x", (y) => y.file("")).close().close().close(), at]
  }),
  // symlink targets
  bad("an empty symlink target", /empty symlink target/, () => {
    const x = b().strs("(", "type", "symlink", "target")
    const at = x.mark
    return [x.strs("", ")"), at]
  }),
  bad("a symlink target with NUL", /symlink target contains a NUL byte/, () => {
    const x = b().strs("(", "type", "symlink", "target")
    const at = x.mark
    return [x.strs("/etc\0x", ")"), at]
  }),
  bad("a symlink target of 4096 bytes", /symlink target of 4096 bytes is longer than 4095/, () => {
    const x = b().strs("(", "type", "symlink", "target")
    const at = x.mark
    return [x.strs("t".repeat(4096), ")"), at]
  }),
  // lengths
  bad("a file size of 2^62 (nothing is allocated)", /file size 4611686018427387904 is larger than 2\^53 - 1/, () => {
    const x = b().strs("(", "type", "regular", "contents")
    const at = x.mark
    return [x.u64(2n ** 62n).raw(new Uint8Array(64)), at]
  }),
  bad("a file size of 2^64 - 1", /file size \d+ is larger than 2\^53 - 1/, () => {
    const x = b().strs("(", "type", "regular", "contents")
    return [x.u64(2n ** 64n - 1n), x.mark - 8]
  }),
  bad("a file size of 2^50 with 100 bytes of contents", /truncated archive: expected the rest of file contents/, () => {
    const x = b().strs("(", "type", "regular", "contents").u64(2n ** 50n).raw(new Uint8Array(100))
    return [x, x.mark]
  }),
  bad("a file size shorter than the contents", /non-zero padding/, () => {
    // declares 2 bytes of "abcd": the decoder reads "ab", then "cd" where zero padding must be
    const x = b().strs("(", "type", "regular", "contents").u64(2)
    const at = x.mark + 2
    return [x.raw(Buffer.from("abcd")).raw(new Uint8Array(4)).str(")"), at]
  }),
  // structure
  bad("directories nested deeper than 1024 levels", /directories nested deeper than 1024 levels/, () => {
    const marks: Array<number> = []
    const x = nested(b(), 1025, marks)
    return [x, marks[1024]! + 2 * 16]
  }),
  bad("trailing bytes after the root", /trailing bytes after the end of the archive/, () => {
    const x = b().file("done")
    const at = x.mark
    return [x.raw([0]), at]
  }),
  bad("a second root node", /trailing bytes after the end of the archive/, () => {
    const x = b().file("one")
    const at = x.mark
    return [x.file("two"), at]
  }),
  bad("a directory not closed", /truncated archive: expected 'entry' or '\)'/, () => {
    const x = b().openDir().entry("a", (y) => y.file(""))
    return [x, x.mark]
  })
]

/** A sample NAR touching every kind of field, for truncation at every offset. */
export const sampleNar = (): Uint8Array =>
  new NarBuilder().magic().openDir()
    .entry("bin", (x) => x.openDir().entry("tool", (y) => y.file("#!/bin/sh\n", true)).close())
    .entry("empty", (x) => x.openDir().close())
    .entry("file", (x) => x.file("hello world"))
    .entry("link", (x) => x.symlink("../target"))
    .entry("zero", (x) => x.file(""))
    .close().bytes()
