/** Shared by the NAR tests: generated file trees, Dump arbitraries, a hand-made NAR builder. */
import { Effect, Stream } from "effect"
import fc from "fast-check"
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Tree from "../../src/nar/tree.ts"

/** Names whose UTF-8 byte order differs from JS (UTF-16) string order, mixed case, and odd bytes. */
export const trickyNames = [
  "a", "B", "Z", "b", "10", "9", "é", "Ä", "ä", "\u{1F600}", "\uE000", "\uFFFD", "\uFF21", "x y", "-dash", ".hidden", "~tilde"
]

/**
 * A tree with every kind of entry `nix-store --dump` has to get right: names in tricky orders
 * (including one that is not UTF-8), executables, nested and empty directories, dangling, absolute
 * and relative symlinks, files of 0, 1, 7, 8, 9 and 4096 bytes and one of several MiB.
 */
export const makeKitchenSink = (root: string): string => {
  mkdirSync(join(root, "nested/deeper/empty"), { recursive: true })
  mkdirSync(join(root, "empty"))
  for (const name of trickyNames) writeFileSync(join(root, name), `contents of ${name}\n`)
  for (const name of ["é", "\u{1F600}", "\uE000"]) mkdirSync(join(root, "nested", name))
  writeFileSync(join(root, "nested", "\u{1F600}", "inside"), "smile")
  for (const size of [0, 1, 7, 8, 9, 4096]) writeFileSync(join(root, "nested", `size-${size}`), Buffer.alloc(size, 0x41 + (size % 26)))
  const big = Buffer.alloc(3 * 1024 * 1024 + 5)
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24
  writeFileSync(join(root, "nested/big"), big)
  writeFileSync(join(root, "nested/tool"), "#!/bin/sh\necho hi\n")
  chmodSync(join(root, "nested/tool"), 0o755)
  writeFileSync(join(root, "nested/user-exec-only"), "x")
  chmodSync(join(root, "nested/user-exec-only"), 0o700)
  writeFileSync(join(root, "nested/group-exec-only"), "y")
  chmodSync(join(root, "nested/group-exec-only"), 0o654)
  symlinkSync("../a", join(root, "nested/relative"))
  symlinkSync("/absolute/target", join(root, "nested/absolute"))
  symlinkSync("dangling/é", join(root, "nested/deeper/dangling"))
  symlinkSync("nested", join(root, "dir-link"))
  mkdirSync(join(root, "odd"))
  for (const name of ["q\"uote", "back\\slash", "new\nline", "tab\t", "\u0001ctl", "del\u007f", "cr\r"]) writeFileSync(join(root, "odd", name), name)
  // a name that is not valid UTF-8, next to a real U+FFFD (which a lossy decoding would confuse it with)
  writeFileSync(Buffer.concat([Buffer.from(join(root, "odd") + "/"), Buffer.from([0xff, 0x61])]), "not utf-8")
  writeFileSync(join(root, "odd", "\uFFFDa"), "replacement char")
  symlinkSync(Buffer.from([0x2e, 0x2f, 0xfe]), join(root, "odd", "link-to-bytes"))
  return root
}

/** Writes a Dump to the file system at `path` (which must not exist). */
export const writeDump = (dump: Tree.Tree, path: string): void => {
  switch (dump._tag) {
    case "Regular":
      writeFileSync(path, dump.contents, { mode: dump.executable ? 0o755 : 0o644 })
      chmodSync(path, dump.executable ? 0o755 : 0o644)
      return
    case "SymLink":
      symlinkSync(dump.target, path)
      return
    case "Directory":
      mkdirSync(path)
      for (const [name, child] of dump.entries) writeDump(child, join(path, name))
  }
}

/** No lone surrogates (with the u flag a pair is one code point, so only lone halves match). */
const wellFormed = (s: string) => !/[\uD800-\uDFFF]/u.test(s)

const nameUnit = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(..."abAB09._-~ é\u{1F600}\uE000\uFFFD\"\\\n\u0001") },
  { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) }
)
/** A valid NAR entry name as text (no '/', NUL, '.' or '..'; well-formed UTF-16 so it round-trips). */
export const arbName: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...trickyNames),
  fc.string({ unit: nameUnit, minLength: 1, maxLength: 8 })
).filter((s) => s !== "." && s !== ".." && !s.includes("/") && !s.includes("\0") && wellFormed(s))

export const arbTarget: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("a", "../a", "/absolute/path", "dangling/é", "."),
  fc.string({ unit: nameUnit, minLength: 1, maxLength: 20 })
).filter((s) => s.length > 0 && !s.includes("\0") && wellFormed(s))

export const arbContents: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 20 }),
  fc.constantFrom(0, 1, 7, 8, 9, 15, 16, 17).map((n) => new Uint8Array(n).fill(n)),
  fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n).map((_, i) => (i * 31) & 0xff))
)

export const arbDump: fc.Arbitrary<Tree.Tree> = fc.letrec<{ node: Tree.Tree; file: Tree.Tree; link: Tree.Tree; dir: Tree.Tree }>((tie) => ({
  node: fc.oneof({ depthSize: "small", withCrossShrink: true }, tie("file"), tie("link"), tie("dir")),
  file: fc.tuple(arbContents, fc.boolean()).map(([contents, executable]) => Tree.regular(contents, executable)),
  link: arbTarget.map(Tree.symlink),
  dir: fc.uniqueArray(fc.tuple(arbName, tie("node")), { maxLength: 5, selector: ([name]) => name }).map((entries) => Tree.directory(entries))
})).node

/** A Dump whose root is a directory (what store paths usually are). */
export const arbTree: fc.Arbitrary<Tree.Tree> = fc.uniqueArray(fc.tuple(arbName, arbDump), { minLength: 1, maxLength: 6, selector: ([name]) => name })
  .map((entries) => Tree.directory(entries))

/** Collects a byte stream into one buffer. */
export const collectBytes = <E>(stream: Stream.Stream<Uint8Array, E>): Promise<Buffer> =>
  Effect.runPromise(Stream.runCollect(stream).pipe(Effect.map((chunks) => Buffer.concat([...chunks]))))

/** Splits bytes into chunks at the given cut points (sorted, deduplicated, in range). */
export const chunked = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(bytes.length, c))))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let at = 0
  for (const p of points) {
    out.push(bytes.subarray(at, p))
    at = p
  }
  out.push(bytes.subarray(at))
  return out
}

/**
 * Hand-made NAR bytes, for archives our encoder would refuse to write: `str` appends a
 * length-prefixed, zero-padded string; `mark` is the current offset (to name where a rule breaks).
 */
export class NarBuilder {
  private readonly parts: Array<Uint8Array> = []
  length = 0

  raw(bytes: Uint8Array | ReadonlyArray<number>): this {
    const b = Uint8Array.from(bytes)
    this.parts.push(b)
    this.length += b.length
    return this
  }

  u64(n: bigint | number): this {
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(BigInt(n))
    return this.raw(b)
  }

  str(s: string | Uint8Array, padByte = 0): this {
    const b = typeof s === "string" ? Buffer.from(s) : s
    this.u64(b.length).raw(b)
    return this.raw(new Uint8Array((8 - (b.length % 8)) % 8).fill(padByte))
  }

  strs(...ss: ReadonlyArray<string | Uint8Array>): this {
    for (const s of ss) this.str(s)
    return this
  }

  get mark(): number {
    return this.length
  }

  bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.parts))
  }

  // common shapes
  magic(): this { return this.str("nix-archive-1") }
  file(contents: string | Uint8Array, executable = false): this {
    this.strs("(", "type", "regular")
    if (executable) this.strs("executable", "")
    return this.strs("contents", contents, ")")
  }
  symlink(target: string | Uint8Array): this { return this.strs("(", "type", "symlink", "target", target, ")") }
  openDir(): this { return this.strs("(", "type", "directory") }
  entry(name: string | Uint8Array, node: (b: this) => this): this {
    this.strs("entry", "(", "name", name, "node")
    node(this)
    return this.str(")")
  }
  close(): this { return this.str(")") }
}

/** Edits to a valid archive, applied by `mutateNar`: flipped bytes, cuts, insertions, deletions, huge length fields. */
export const arbNarEdits = fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 4 })

export const mutateNar = (nar: Uint8Array, edits: ReadonlyArray<readonly [number, number, number]>): Uint8Array => {
  let b = Buffer.from(nar)
  for (const [where, what, kind] of edits) {
    const at = b.length === 0 ? 0 : where % b.length
    if (kind === 0 && b.length > 0) b[at] = b[at]! ^ (1 << (what % 8))
    else if (kind === 1) b = b.subarray(0, at)
    else if (kind === 2) b = Buffer.concat([b.subarray(0, at), Buffer.from([what & 0xff]), b.subarray(at)])
    else if (kind === 3) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + (what % 16))])
    // overwrite an aligned u64 (most are length fields) with something large
    else if (b.length >= 8) b.writeBigUInt64LE([2n ** 62n, 2n ** 53n, 2n ** 32n + 1n, BigInt(what)][what % 4]!, (at & ~7) % (b.length - 7))
  }
  return new Uint8Array(b)
}
