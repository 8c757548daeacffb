/**
 * @b3/s3: `s3://BUCKET?…` binary caches for b3 (read and write, streamed multipart uploads, resumed
 * downloads), and the blobs under `chunked+s3://` chunk stores. Installed beside b3, it is loaded
 * when such a store is first opened; a program can also use its layer directly:
 *
 * ```ts
 * import { s3CacheLayer } from "@b3/s3"
 * program.pipe(Effect.provide(s3CacheLayer("s3://my-cache?region=eu-west-1")))
 * ```
 */
import type { B3Plugin } from "b3/plugin"
import { openS3Cache, s3BlobStore } from "./opener.ts"

export { openS3Cache, s3BlobStore, s3CacheLayer } from "./opener.ts"
export { parseS3Location, s3Params, type S3Location } from "./location.ts"

const plugin: B3Plugin = { name: "@b3/s3", schemes: { s3: openS3Cache }, blobStores: { s3: s3BlobStore } }

export default plugin
