/**
 * Where an unframed NAR ends in a byte stream. The serve protocol and old worker-protocol versions
 * send NARs bare, so the only way to know where one stops is to follow its structure: strings,
 * parentheses, and the keywords after which a string is data (contents, names, targets, types).
 * This scanner keeps no data, only up to 16 bytes of a keyword; full validation (names, order,
 * hashes) is the store's job when it adds the NAR.
 */
import { WireMalformed } from "./errors.ts"

const LEN = 0, BODY = 1, PAD = 2, DONE = 3
const maxKeyword = 16
const dataAfter = new Set(["contents", "target", "name", "type", "executable"])
const keywords = new Set(["(", ")", "entry", "node", ...dataAfter])

export class NarBoundary {
  private phase = LEN
  private readonly lenBytes = new Uint8Array(8)
  private lenFill = 0
  private remaining = 0
  private padLeft = 0
  private readonly keyword = new Uint8Array(maxKeyword)
  private keywordFill = 0
  private isData = false
  private expectData = false
  private header = true
  private started = false
  private ended = false
  private depth = 0
  /** Bytes of the archive seen so far. */
  size = 0

  get done(): boolean { return this.phase === DONE }

  /**
   * Feeds a chunk. Returns -1 when the archive continues past it, the number of bytes of this chunk
   * that belong to the archive when it ends inside it, or an error when the bytes are not a NAR.
   */
  push(chunk: Uint8Array): number | WireMalformed {
    let p = 0
    const n = chunk.length
    while (p < n && this.phase !== DONE) {
      if (this.phase === LEN) {
        const take = Math.min(8 - this.lenFill, n - p)
        this.lenBytes.set(chunk.subarray(p, p + take), this.lenFill)
        this.lenFill += take
        p += take
        if (this.lenFill < 8) break
        this.lenFill = 0
        const b = this.lenBytes
        const hi = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0
        const lo = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0
        if (hi > 0x1f_ffff) return new WireMalformed({ reason: "not a NAR (a string longer than 2^53 bytes)" })
        this.remaining = hi * 0x1_0000_0000 + lo
        this.isData = this.expectData
        this.expectData = false
        if (!this.isData && this.remaining > maxKeyword) return new WireMalformed({ reason: "not a NAR (a keyword longer than 16 bytes)" })
        this.keywordFill = 0
        this.padLeft = (8 - (this.remaining % 8)) % 8
        this.phase = BODY
      } else if (this.phase === BODY) {
        const take = Math.min(this.remaining, n - p)
        if (!this.isData) this.keyword.set(chunk.subarray(p, p + take), this.keywordFill)
        if (!this.isData) this.keywordFill += take
        this.remaining -= take
        p += take
      } else {
        const take = Math.min(this.padLeft, n - p)
        for (let i = p; i < p + take; i++) if (chunk[i] !== 0) return new WireMalformed({ reason: "not a NAR (non-zero padding)" })
        this.padLeft -= take
        p += take
      }
      // a string's body is complete (possibly empty): interpret it once
      if (this.phase === BODY && this.remaining === 0) {
        const error = this.finishString()
        if (error) return error
        this.phase = PAD
      }
      if (this.phase === PAD && this.padLeft === 0) this.phase = this.ended ? DONE : LEN
    }
    this.size += p
    return this.phase === DONE ? p : -1
  }

  private finishString(): WireMalformed | undefined {
    if (this.isData) return undefined
    const word = String.fromCharCode(...this.keyword.subarray(0, this.keywordFill))
    if (this.header) {
      if (word !== "nix-archive-1") return new WireMalformed({ reason: "not a NAR (no 'nix-archive-1' header)" })
      this.header = false
      return undefined
    }
    if (!keywords.has(word)) return new WireMalformed({ reason: `not a NAR (unexpected '${word.replace(/[^\x20-\x7e]/g, "?")}')` })
    if (word === "(") { this.depth++; this.started = true }
    else if (word === ")") {
      if (this.depth === 0) return new WireMalformed({ reason: "not a NAR (unbalanced ')')" })
      this.depth--
      if (this.depth === 0) this.ended = true
    } else if (!this.started) return new WireMalformed({ reason: "not a NAR (expected '(' after the header)" })
    else if (dataAfter.has(word)) this.expectData = true
    return undefined
  }
}
