/**
 * Streams a body of unknown length into one S3 object. The stream is cut into parts of a bounded
 * size; a body that fits in one part is a single PUT, anything larger a multipart upload whose
 * parts go up a few at a time (a store-wide pool of part slots bounds memory however many uploads
 * run). The upload is a scoped resource: if the body fails, a part cannot be stored, or the fiber
 * is interrupted, the upload is aborted, so the object never appears partially and no upload is
 * left open (while the server can be reached).
 */
import { Effect, Exit, Fiber, Pull, type Semaphore, Stream } from "effect"
import { partSizeFor } from "./location.ts"
import { S3RequestError, type S3Requests } from "./requests.ts"

export interface MultipartOptions {
  /** Parts in flight across every upload of the store (each holds one part in memory). */
  readonly partSlots: Semaphore.Semaphore
  /** Part size (the last part may be smaller). */
  readonly partSize: number
  /** Where part buffers come from and go back to. */
  readonly buffers: PartBuffers
}

/**
 * Part buffers of the store's part size, reused: memory stays at (parts in flight + uploads
 * filling a part) buffers instead of a new buffer per part left for the garbage collector.
 */
export interface PartBuffers {
  readonly take: (size: number) => Buffer
  readonly give: (buffer: Uint8Array) => void
}

export const makePartBuffers = (partSize: number, keep: number): PartBuffers => {
  const free: Array<Buffer> = []
  return {
    take: (size) => (size === partSize ? free.pop() : undefined) ?? Buffer.allocUnsafeSlow(size),
    give: (buffer) => {
      if (buffer.buffer.byteLength !== partSize || free.length >= keep || free.some((b) => b.buffer === buffer.buffer)) return
      free.push(Buffer.from(buffer.buffer, 0, partSize))
    }
  }
}

/** Reads a stream a part at a time: each part is `size` bytes except the last. */
const partReader = <E, R>(body: Stream.Stream<Uint8Array, E, R>, size: number, buffers: PartBuffers) => Effect.gen(function*() {
  const pull = yield* Stream.toPull(body)
  const queue: Array<Uint8Array> = []
  let ended = false
  /** The next part, or undefined at the end of the stream. */
  const next: Effect.Effect<Uint8Array | undefined, E, R> = Effect.gen(function*() {
    let part: Buffer | undefined
    let filled = 0
    while (filled < size) {
      if (queue.length === 0) {
        if (ended) break
        const chunks = yield* Pull.catchDone(pull, () => Effect.sync(() => { ended = true; return [] as ReadonlyArray<Uint8Array> }))
        for (const chunk of chunks) if (chunk.length > 0) queue.push(chunk)
        continue
      }
      const head = queue[0]!
      part ??= buffers.take(size)
      const n = Math.min(head.length, size - filled)
      part.set(n === head.length ? head : head.subarray(0, n), filled)
      filled += n
      if (n === head.length) queue.shift()
      else queue[0] = head.subarray(n)
    }
    return part?.subarray(0, filled)
  })
  return { next, atEnd: () => ended && queue.length === 0 }
})

export const putStream = (s3: S3Requests, options: MultipartOptions) =>
  <E, R>(key: string, body: Stream.Stream<Uint8Array, E, R>, contentType: string, sizeHint?: number): Effect.Effect<void, S3RequestError | E, R> =>
    Effect.scoped(Effect.gen(function*() {
      const { client, bucket } = s3
      const { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand } = s3.sdk
      const { buffers } = options
      const reader = yield* partReader(body, partSizeFor(options.partSize, sizeHint), buffers)
      const first = (yield* reader.next) ?? new Uint8Array(0)
      if (reader.atEnd()) {
        yield* s3.run(`PUT ${key}`, (signal) => client.send(new PutObjectCommand({
          Bucket: bucket, Key: key, Body: first, ContentLength: first.length, ContentType: contentType
        }), { abortSignal: signal })).pipe(Effect.ensuring(Effect.sync(() => buffers.give(first))))
        return
      }

      const uploadId = yield* Effect.acquireRelease(
        Effect.flatMap(s3.run(`start upload of ${key}`, (signal) => client.send(new CreateMultipartUploadCommand({
          Bucket: bucket, Key: key, ContentType: contentType
        }), { abortSignal: signal })), (out) => out.UploadId
          ? Effect.succeed(out.UploadId)
          : Effect.fail(new S3RequestError({ operation: `start upload of ${key}`, status: 200, code: "NoUploadId", reason: "the server gave no upload id", retryable: false }))),
        (id, exit) => Exit.isSuccess(exit) ? Effect.void : Effect.ignore(s3.runPersistently(`abort upload of ${key}`, (signal) =>
          client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id }), { abortSignal: signal })))
      )

      const etags: Array<string> = []
      const fibers: Array<Fiber.Fiber<void, S3RequestError>> = []
      let failure: S3RequestError | undefined
      const uploadPart = (number: number, bytes: Uint8Array) =>
        s3.run(`upload part ${number} of ${key}`, (signal) => client.send(new UploadPartCommand({
          Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: number, Body: bytes, ContentLength: bytes.length
        }), { abortSignal: signal })).pipe(
          Effect.flatMap((out) => out.ETag
            ? Effect.sync(() => { etags[number - 1] = out.ETag! })
            : Effect.fail(new S3RequestError({ operation: `upload part ${number} of ${key}`, status: 200, code: "NoETag", reason: "the server gave no ETag", retryable: false }))),
          Effect.tapError((e) => Effect.sync(() => { failure ??= e })),
          Effect.ensuring(Effect.andThen(Effect.sync(() => buffers.give(bytes)), options.partSlots.release(1)))
        )

      let part: Uint8Array | undefined = first
      for (let number = 1; part !== undefined; number++) {
        yield* options.partSlots.take(1)
        if (failure) {
          buffers.give(part)
          yield* options.partSlots.release(1)
          return yield* failure
        }
        fibers.push(yield* Effect.forkScoped(uploadPart(number, part)))
        part = yield* reader.next
      }
      yield* Fiber.joinAll(fibers)
      yield* s3.run(`complete upload of ${key}`, (signal) => client.send(new CompleteMultipartUploadCommand({
        Bucket: bucket, Key: key, UploadId: uploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) }
      }), { abortSignal: signal }))
    }))
