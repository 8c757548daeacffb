/**
 * Typed errors of the derivation code: a malformed `.drv` (with the byte offset where parsing
 * stopped), a derivation whose inputs cannot be found, and bad arguments to the `derivation` API.
 */
import { Schema } from "effect"

/** A `.drv` file (ATerm or JSON form) that is not a valid derivation. `offset` is a byte offset, or -1 when not positional. */
export class InvalidDerivation extends Schema.TaggedError<InvalidDerivation>()("InvalidDerivation", {
  input: Schema.String,
  offset: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return this.offset >= 0
      ? `invalid derivation '${this.input}' at byte ${this.offset}: ${this.reason}`
      : `invalid derivation '${this.input}': ${this.reason}`
  }
}

/** An input derivation needed to hash a derivation is not available. */
export class MissingDerivation extends Schema.TaggedError<MissingDerivation>()("MissingDerivation", {
  drvPath: Schema.String,
  neededBy: Schema.String
}) {
  override get message() { return `input derivation '${this.drvPath}' (needed by '${this.neededBy}') is not available` }
}

/** The attributes given to `derivation(…)` cannot make a derivation (as Nix's `derivationStrict` would refuse them). */
export class InvalidDerivationArgs extends Schema.TaggedError<InvalidDerivationArgs>()("InvalidDerivationArgs", {
  name: Schema.String,
  attribute: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return this.attribute === ""
      ? `derivation '${this.name}': ${this.reason}`
      : `derivation '${this.name}', attribute '${this.attribute}': ${this.reason}`
  }
}
