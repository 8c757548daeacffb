/**
 * The `s3://BUCKET?…` store URI opener: a binary cache (StoreRead, and StoreWrite unless
 * `read-only=true`) in an S3 bucket. The AWS SDK is loaded only when an s3:// store is opened
 * (sdk.ts), so other commands do not pay for it at start-up.
 */
import { Effect } from "effect"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { StoreOpener } from "../../services/registry.ts"
import { makeBinaryCacheStore } from "../binary-cache/binary-cache-store.ts"
import { parseBinaryCacheOptions } from "../binary-cache/options.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import { parseS3Location, s3Params } from "./location.ts"
import { makeS3Blobs } from "./s3-blobs.ts"
import { loadSdk } from "./sdk.ts"

export const openS3Cache: StoreOpener = (uri) => Effect.gen(function*() {
  const options = yield* parseBinaryCacheOptions(uri, [...s3Params, "read-only"])
  const location = yield* Effect.fromResult(parseS3Location(uri))
  const writable = uri.params.get("read-only") !== "1" && uri.params.get("read-only") !== "true"
  const sdk = yield* Effect.tryPromise({ try: loadSdk, catch: (e) => new StoreIoError({ store: uri.raw, operation: "load the AWS SDK", reason: String(e) }) })
  const blobs = yield* makeS3Blobs(sdk, uri.raw, location, { spoolDir: join(tmpdir(), "b3-upload-spool"), createBucket: writable })
  const store = yield* makeBinaryCacheStore(blobs, { ...options, writable })
  return { read: store.read, write: writable ? store.write : undefined }
})
