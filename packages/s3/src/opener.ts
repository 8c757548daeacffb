/**
 * The `s3://BUCKET?…` store URI opener: a binary cache (StoreRead, and StoreWrite unless
 * `read-only=true`) in an S3 bucket. The AWS SDK is loaded only when an s3:// store is opened
 * (sdk.ts), so other commands do not pay for it at start-up.
 */
import { Effect, Layer } from "effect"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  BadStoreUri, type BlobStoreOpener, makeBinaryCacheStore, openerLayer, parseBinaryCacheOptions, readOnlyOption, readWriteContext,
  type StoreError, StoreIoError, type StoreOpener, type StoreRead, type StoreWrite
} from "b3/plugin"
import { parseS3Location, s3Params } from "./location.ts"
import { makeS3Blobs } from "./s3-blobs.ts"
import { loadSdk } from "./sdk.ts"

export const openS3Cache: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  const options = yield* parseBinaryCacheOptions(uri, [...s3Params, "read-only"])
  const location = yield* Effect.fromResult(parseS3Location(uri))
  const writable = !readOnlyOption(uri)
  const sdk = yield* Effect.tryPromise({ try: loadSdk, catch: (e) => new StoreIoError({ store: uri.raw, operation: "load the AWS SDK", reason: String(e) }) })
  const blobs = yield* makeS3Blobs(sdk, uri.raw, location, { spoolDir: join(tmpdir(), "b3-upload-spool"), createBucket: writable })
  const store = yield* makeBinaryCacheStore(blobs, { ...options, writable })
  return readWriteContext(store.read, writable ? store.write : undefined)
}))

/** An `s3://BUCKET?…` cache that reads and writes (for read-only access, open its URI with `read-only=true`). */
export const s3CacheLayer = (uri: string): Layer.Layer<StoreRead | StoreWrite, StoreError | BadStoreUri> =>
  openerLayer(openS3Cache, uri)

/** The bucket's blobs for stores built on blobs (`chunked+s3://bucket?…`): the same options as s3://. */
export const s3BlobStore: BlobStoreOpener = {
  params: s3Params,
  open: (uri, { readOnly, spoolDir }) => Effect.gen(function*() {
    const location = yield* Effect.fromResult(parseS3Location(uri))
    const sdk = yield* Effect.tryPromise({ try: loadSdk, catch: (e) => new BadStoreUri({ uri: uri.raw, reason: `cannot load the AWS SDK: ${String(e)}` }) })
    return yield* makeS3Blobs(sdk, uri.raw, location, { spoolDir, createBucket: !readOnly })
  })
}
