/**
 * The typed errors every store layer speaks. A program handles them by tag:
 *
 * | tag             | meaning                                                              | CLI exit |
 * |-----------------|----------------------------------------------------------------------|----------|
 * | PathNotValid    | the store has no such valid path                                     | 3        |
 * | HashMismatch    | bytes did not match the declared NAR/file hash or size                | 4        |
 * | SignatureError  | no valid signature from a trusted key                                 | 4        |
 * | BadNar          | the NAR stream is malformed (from src/nar)                            | 2        |
 * | StoreCorrupt    | the store's own data is inconsistent (DB row without contents, …)     | 1        |
 * | Unsupported     | this store cannot do that operation (e.g. reverse closure of a cache) | 1        |
 * | StoreIoError    | the backend failed (disk, network, database)                          | 1        |
 * | FileNotFound    | a file-system path given to add does not exist (from src/nar)         | 3        |
 * | BadStoreUri     | a store URI that no layer understands, or with bad options           | 2        |
 * | ReferenceCycle  | paths refer to each other in a cycle (a hostile or broken cache)      | 1        |
 */
import { Schema } from "effect"
import type { BadNar, HashMismatch } from "../nar/errors.ts"
import type { FileNotFound } from "../nar/fs/errors.ts"
import type { SignatureError } from "../core/signature.ts"

export { SignatureError } from "../core/signature.ts"
/** A NAR's bytes did not match the declared hash, size or content address (checked in src/nar/check.ts). */
export { HashMismatch } from "../nar/errors.ts"

export class PathNotValid extends Schema.TaggedError<PathNotValid>()("PathNotValid", {
  path: Schema.String,
  store: Schema.String
}) {
  override get message() { return `path '${this.path}' is not valid in store ${this.store}` }
}

export class StoreCorrupt extends Schema.TaggedError<StoreCorrupt>()("StoreCorrupt", {
  store: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `store ${this.store} is corrupt: ${this.reason}` }
}

export class Unsupported extends Schema.TaggedError<Unsupported>()("Unsupported", {
  store: Schema.String,
  operation: Schema.String
}) {
  override get message() { return `store ${this.store} does not support ${this.operation}` }
}

export class StoreIoError extends Schema.TaggedError<StoreIoError>()("StoreIoError", {
  store: Schema.String,
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `${this.operation} failed on store ${this.store}: ${this.reason}` }
}

export class BadStoreUri extends Schema.TaggedError<BadStoreUri>()("BadStoreUri", {
  uri: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `bad store URI '${this.uri}': ${this.reason}` }
}

/** Paths that refer to each other in a cycle (other than a path referring to itself): no order can add them. */
export class ReferenceCycle extends Schema.TaggedError<ReferenceCycle>()("ReferenceCycle", {
  path: Schema.String,
  referrer: Schema.String
}) {
  override get message() { return `cycle detected in the references of '${this.path}' from '${this.referrer}'` }
}

/** The union of typed errors a store operation can fail with. */
export type StoreError =
  | PathNotValid
  | HashMismatch
  | SignatureError
  | BadNar
  | StoreCorrupt
  | Unsupported
  | StoreIoError
  | ReferenceCycle
  /** A file-system path given to add does not exist. */
  | FileNotFound
