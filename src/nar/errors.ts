/**
 * Typed errors of the pure NAR code: `BadNar` (decoding, encoding events, trees), `HashMismatch`
 * (a NAR whose hash, size or content address is not the expected one: check.ts) and
 * `InvalidRewrite`; the filesystem side's are in fs/errors.ts.
 */
import { Schema } from "effect"

/** A malformed archive (or event sequence): `offset` is the byte offset in the NAR where it goes wrong. */
export class BadNar extends Schema.TaggedError<BadNar>()("BadNar", {
  offset: Schema.Number,
  reason: Schema.String
}) {
  override get message() { return `bad NAR at byte ${this.offset}: ${this.reason}` }
}

/** Bytes that did not match the declared NAR hash, NAR size or content address (`path` names the NAR, e.g. its store path). */
export class HashMismatch extends Schema.TaggedError<HashMismatch>()("HashMismatch", {
  path: Schema.String,
  what: Schema.String,
  expected: Schema.String,
  actual: Schema.String
}) {
  override get message() {
    return `${this.what} mismatch for '${this.path}': expected ${this.expected}, got ${this.actual}`
  }
}

/** A rewrite map that cannot be applied in place (keys and values must all have one length). */
export class InvalidRewrite extends Schema.TaggedError<InvalidRewrite>()("InvalidRewrite", {
  reason: Schema.String
}) {
  override get message() { return `invalid rewrite: ${this.reason}` }
}
