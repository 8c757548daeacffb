/**
 * Typed errors of the pure format code. Each carries the offending input and a reason a user can
 * act on; `message` joins them so that printing the error is enough.
 */
import { Schema } from "effect"

const fields = { input: Schema.String, reason: Schema.String }

export class InvalidEncoding extends Schema.TaggedError<InvalidEncoding>()("InvalidEncoding", fields) {
  override get message() { return `invalid encoding '${this.input}': ${this.reason}` }
}

export class InvalidHash extends Schema.TaggedError<InvalidHash>()("InvalidHash", fields) {
  override get message() { return `invalid hash '${this.input}': ${this.reason}` }
}

export class InvalidStorePath extends Schema.TaggedError<InvalidStorePath>()("InvalidStorePath", fields) {
  override get message() { return `invalid store path '${this.input}': ${this.reason}` }
}

export class InvalidContentAddress extends Schema.TaggedError<InvalidContentAddress>()("InvalidContentAddress", fields) {
  override get message() { return `invalid content address '${this.input}': ${this.reason}` }
}

export class InvalidMachines extends Schema.TaggedError<InvalidMachines>()("InvalidMachines", fields) {
  override get message() { return `bad machine specification '${this.input}': ${this.reason}` }
}
