/**
 * Blobs in an S3 bucket (`s3://` caches): HEAD/GET to read, PUT or multipart upload to write.
 * Downloads stream from the response body; one cut off midway is resumed where it stopped with
 * a Range request pinned to the same object (If-Match on its ETag), a few times at most, and the
 * byte count is checked against the object's length, so a truncated body never passes as whole.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Effect, Option, type Scope, Semaphore, Stream } from "effect"
import { createReadStream, rmSync } from "node:fs"
import type { Readable } from "node:stream"
import { StoreIoError, type BlobStore } from "b3/plugin"
import type { S3Location } from "./location.ts"
import { makePartBuffers, putStream } from "./multipart.ts"
import { makeRequests, requestError, type RequestOptions, S3RequestError } from "./requests.ts"
import type { S3Sdk } from "./sdk.ts"

export interface S3BlobOptions extends RequestOptions {
  readonly spoolDir: string
  /** Create the bucket if it does not exist (as Nix does for a cache it writes to). */
  readonly createBucket: boolean
  /** Parts in flight at once, across all uploads (default 3). */
  readonly partsInFlight?: number
  /** How many times a download cut off midway is resumed (default 5). */
  readonly resumes?: number
}

export const makeS3Blobs = (sdk: typeof S3Sdk, uri: string, location: S3Location, options: S3BlobOptions): Effect.Effect<BlobStore, StoreIoError, Scope.Scope> =>
  Effect.gen(function*() {
    const s3 = yield* makeRequests(sdk, location, options)
    const { client, bucket } = s3
    const { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand } = sdk
    const partsInFlight = options.partsInFlight ?? 3
    const partSlots = yield* Semaphore.make(partsInFlight)
    const buffers = makePartBuffers(location.partSize, partsInFlight + 1)
    const upload = putStream(s3, { partSlots, partSize: location.partSize, buffers })
    const ioError = (e: S3RequestError) => new StoreIoError({ store: uri, operation: e.operation, reason: e.message.slice(e.operation.length + 2) })

    if (options.createBucket) {
      const head = yield* Effect.result(s3.run(`HEAD bucket ${bucket}`, (signal) => client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal })))
      if (head._tag === "Failure") {
        if (!head.failure.notFound && head.failure.code !== "NoSuchBucket") return yield* ioError(head.failure)
        yield* s3.run(`create bucket ${bucket}`, (signal) => client.send(new CreateBucketCommand({ Bucket: bucket }), { abortSignal: signal })).pipe(
          Effect.catchIf((e) => e.code === "BucketAlreadyOwnedByYou" || e.code === "BucketAlreadyExists", () => Effect.void),
          Effect.mapError(ioError))
      }
    }

    /** 404, and 403 (what S3 answers for a missing key to a client that may not list the bucket). */
    const missing = (e: S3RequestError) => e.notFound || e.status === 403

    const getStream = (key: string): Stream.Stream<Uint8Array, StoreIoError> => Stream.suspend(() => {
      let received = 0
      let length: number | undefined
      let etag: string | undefined
      let resumes = 0
      const operation = `GET ${key}`
      const from = (): Stream.Stream<Uint8Array, S3RequestError> => Stream.unwrap(Effect.map(
        s3.run(operation, (signal) => client.send(new GetObjectCommand({
          Bucket: bucket, Key: key, ...(received > 0 ? { Range: `bytes=${received}-`, ...(etag ? { IfMatch: etag } : {}) } : {})
        }), { abortSignal: signal })),
        (out) => {
          if (received === 0) { length = out.ContentLength; etag = out.ETag }
          return NodeStream.fromReadable<Uint8Array, S3RequestError>({ evaluate: () => out.Body as Readable, onError: (e) => requestError(operation, e) }).pipe(
            Stream.map((chunk: Uint8Array) => { received += chunk.length; return chunk }),
            Stream.concat(Stream.suspend(() => length !== undefined && received < length
              ? Stream.fail(new S3RequestError({ operation, status: 200, code: "Truncated", reason: `the body ended after ${received} of ${length} bytes`, retryable: true }))
              : Stream.empty)))
        })).pipe(
        Stream.catch((e: S3RequestError) => e.retryable && received > 0 && resumes++ < (options.resumes ?? 5) ? from() : Stream.fail(e)))
      return Stream.mapError(from(), (e) => e.notFound && received === 0
        ? new StoreIoError({ store: uri, operation, reason: "not found" })
        : ioError(e))
    })

    const putBytes = (key: string, bytes: Uint8Array, contentType: string) =>
      Effect.mapError(s3.run(`PUT ${key}`, (signal) => client.send(new PutObjectCommand({
        Bucket: bucket, Key: key, Body: bytes, ContentLength: bytes.length, ContentType: contentType
      }), { abortSignal: signal })), ioError)

    return {
      uri,
      spoolDir: options.spoolDir,
      exists: (key) => s3.run(`HEAD ${key}`, (signal) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal })).pipe(
        Effect.as(true),
        Effect.catchIf(missing, () => Effect.succeed(false)),
        Effect.mapError(ioError)),
      getBytes: (key) => s3.run(`GET ${key}`, async (signal) => {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal })
        return out.Body ? await out.Body.transformToByteArray() : new Uint8Array(0)
      }).pipe(
        Effect.map(Option.some),
        Effect.catchIf(missing, () => Effect.succeed(Option.none())),
        Effect.mapError(ioError)),
      getStream,
      getRange: (key, start, length) => s3.run(`GET ${key}`, async (signal) => {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${start + length - 1}` }), { abortSignal: signal })
        return out.Body ? await out.Body.transformToByteArray() : new Uint8Array(0)
      }).pipe(
        Effect.mapError(ioError),
        Effect.flatMap((bytes) => bytes.length === length ? Effect.succeed(bytes)
          : Effect.fail(new StoreIoError({ store: uri, operation: `GET ${key}`, reason: `got ${bytes.length} of ${length} bytes` })))),
      remove: (key) => Effect.asVoid(Effect.mapError(s3.run(`DELETE ${key}`, (signal) =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal })), ioError)),
      putBytes,
      putStream: (key, body, contentType, sizeHint) => Effect.mapError(upload(key, body, contentType, sizeHint),
        (e) => e instanceof S3RequestError ? ioError(e) : e),
      putFile: (key, file, contentType) => Effect.ensuring(
        Effect.mapError(upload(key, NodeStream.fromReadable<Uint8Array, S3RequestError>({
          evaluate: () => createReadStream(file, { highWaterMark: 1 << 20 }),
          onError: (e) => requestError(`read ${file}`, e)
        }), contentType), ioError),
        Effect.sync(() => rmSync(file, { force: true })))
    }
  })
