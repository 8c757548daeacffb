/**
 * Typed errors of the wire protocols' pure code. Decoders never throw: any bytes give a value or
 * one of these.
 */
import { Schema } from "effect"

/** The bytes ended before the message did (a truncated frame, or a peer that hung up mid-message). */
export class WireTruncated extends Schema.TaggedError<WireTruncated>()("WireTruncated", {
  what: Schema.String
}) {
  override get message() { return `the connection ended in the middle of ${this.what}` }
}

/** A length or count above what this side accepts (checked before anything is allocated). */
export class WireTooLarge extends Schema.TaggedError<WireTooLarge>()("WireTooLarge", {
  what: Schema.String,
  length: Schema.String,
  max: Schema.Number
}) {
  override get message() { return `${this.what} of ${this.length} is larger than the limit of ${this.max}` }
}

/** Bytes that do not form a valid message (bad magic, non-zero padding, unknown tag…). */
export class WireMalformed extends Schema.TaggedError<WireMalformed>()("WireMalformed", {
  reason: Schema.String
}) {
  override get message() { return `protocol error: ${this.reason}` }
}

export type WireError = WireTruncated | WireTooLarge | WireMalformed
