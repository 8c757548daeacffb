/** The union of typed errors a store operation can fail with (see errors.ts for each). */
import type { BadNar, FileNotFound } from "../nar/errors.ts"
import type { SignatureError } from "../core/signature.ts"
import type { HashMismatch, PathNotValid, StoreCorrupt, StoreIoError, Unsupported } from "./errors.ts"

export type StoreError =
  | PathNotValid
  | HashMismatch
  | SignatureError
  | BadNar
  | StoreCorrupt
  | Unsupported
  | StoreIoError
  /** A file-system path given to add does not exist. */
  | FileNotFound
