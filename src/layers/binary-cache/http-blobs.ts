/**
 * Blobs on an HTTP(S) server (`http://host/path` caches): GET/HEAD to read, PUT to write where
 * the server allows it. Requests are bounded in number (a semaphore) and retried with exponential
 * backoff on 5xx answers, resets and timeouts; 404/403 mean "not there".
 */
import { Context, Duration, Effect, Layer, Option, Schedule, Schema, type Scope, Semaphore, Stream, Tracer } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { statSync, rmSync } from "node:fs"
import { readFileStream } from "../../io/file-stream.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import type { BlobStore } from "./blob-store.ts"
import { makeSmallRequests, type TransportError } from "./http-small.ts"

export interface HttpBlobOptions {
  /** Requests in flight at once (default 128: narinfo lookups of a closure go out together, over connections kept alive and reused). */
  readonly concurrency?: number
  /** Attempts per request (1 = no retry). */
  readonly attempts?: number
  /** A request that has not answered (or a body that has not moved) for this long is abandoned. */
  readonly timeout?: Duration.Input
  readonly spoolDir: string
}

/** An answer worth asking again for (a 5xx status). */
class Retryable extends Schema.TaggedError<Retryable>()("Retryable", { reason: Schema.String }) {
  override get message() { return this.reason }
}

/** The blob store lives as long as the scope: its connection pool is closed with it. */
export const makeHttpBlobs = (uri: string, baseUrl: string, options: HttpBlobOptions): Effect.Effect<BlobStore, never, Scope.Scope> => Effect.gen(function*() {
  const scope = yield* Effect.scope
  const concurrency = options.concurrency ?? 128
  const timeout = options.timeout ?? Duration.seconds(60)
  // Whole small bodies (narinfos, small NARs) and HEADs go straight through node:http(s) (http-small.ts).
  const small = makeSmallRequests(baseUrl.startsWith("https:"), { maxSockets: concurrency, timeoutMs: Duration.toMillis(Duration.fromInputUnsafe(timeout)) })
  yield* Effect.addFinalizer(() => Effect.sync(small.close))
  // Streams, ranges and uploads go through Effect's HttpClient over undici, loaded on first use: the
  // undici client is large (~28 MiB of RSS once loaded), and a copy of small paths never needs it.
  // Every request is tied to a scope (the caller's, or one around it here): its connection is released
  // when that closes. Unscoped, the client watches each response with a FinalizationRegistry,
  // which keeps the response, and the body it read, alive until the next full collection: copying a
  // closure of 10,000 small paths, their NARs piled up (tens of MiB) between collections.
  const loadClient = yield* Effect.cached(Effect.gen(function*() {
    const NodeHttpClient = yield* Effect.promise(() => import("@effect/platform-node/NodeHttpClient"))
    return HttpClient.withScope(Context.get(yield* Layer.buildWithScope(NodeHttpClient.layerUndici, scope), HttpClient.HttpClient))
  }))
  const semaphore = yield* Semaphore.make(concurrency)
  const base = baseUrl.endsWith("/") ? baseUrl : baseUrl + "/"
  const url = (key: string) => base + key.split("/").map(encodeURIComponent).join("/")
  const failure = (operation: string, reason: string) => new StoreIoError({ store: uri, operation, reason })

  const retry = { times: (options.attempts ?? 4) - 1, schedule: Schedule.exponential(Duration.millis(100), 2) }
  const toRetryable = (e: unknown) => new Retryable({ reason: e instanceof Error ? e.message : String(e) })
  const checkStatus = <Res extends { readonly status: number }>(res: Res): Effect.Effect<Res, Retryable> =>
    res.status >= 500 ? Effect.fail(new Retryable({ reason: `HTTP ${res.status}` })) : Effect.succeed(res)

  /** One request at a time per permit, retried on transport errors and 5xx; any other status is returned. */
  const retried = <Res extends { readonly status: number }, R>(operation: string, request: Effect.Effect<Res, Retryable | TransportError, R>) =>
    semaphore.withPermits(1)(
      request.pipe(
        Effect.flatMap(checkStatus),
        Effect.retry(retry),
        Effect.mapError((e) => failure(operation, e.message))
      )
    )

  /**
   * Runs a request; retries transport errors and 5xx; returns the response for any other status.
   * Without a tracing span per request (b3 installs no tracer; a span and its attributes were a
   * good part of the garbage a request leaves, and a copy of a large closure makes tens of thousands).
   */
  const send = (operation: string, request: () => HttpClientRequest.HttpClientRequest) =>
    retried(operation, Effect.flatMap(loadClient, (client) => client.execute(request())).pipe(
      Effect.timeout(timeout),
      Effect.mapError(toRetryable)
    )).pipe(Effect.provideService(Tracer.DisablePropagation, true))

  const notFound = (status: number) => status === 404 || status === 403

  /** A whole small body or a HEAD, retried as `send` retries. */
  const sendSmall = (operation: string, method: "GET" | "HEAD", key: string) => retried(operation, small.request(method, url(key)))

  const put = (key: string, body: () => HttpClientRequest.HttpClientRequest) =>
    Effect.scoped(Effect.flatMap(send(`PUT ${key}`, body), (res) =>
      res.status >= 200 && res.status < 300 ? Effect.void : Effect.fail(failure(`PUT ${key}`, `the server answered HTTP ${res.status}`))))

  return {
    uri,
    spoolDir: options.spoolDir,
    exists: (key) => Effect.flatMap(sendSmall(`HEAD ${key}`, "HEAD", key), (res) =>
      res.status >= 200 && res.status < 300 ? Effect.succeed(true)
        : notFound(res.status) ? Effect.succeed(false)
        : Effect.fail(failure(`HEAD ${key}`, `HTTP ${res.status}`))),
    getBytes: (key) => Effect.flatMap(sendSmall(`GET ${key}`, "GET", key), (res) =>
      notFound(res.status) ? Effect.succeed(Option.none())
        : res.status >= 200 && res.status < 300 ? Effect.succeed(Option.some(res.body))
        : Effect.fail(failure(`GET ${key}`, `HTTP ${res.status}`))),
    getStream: (key) => Stream.unwrap(Effect.flatMap(send(`GET ${key}`, () => HttpClientRequest.get(url(key))), (res) =>
      res.status >= 200 && res.status < 300
        ? Effect.succeed(res.stream.pipe(
          Stream.timeoutOrElse({ duration: timeout, orElse: () => Stream.fail(new Error(`no data for ${Duration.format(Duration.fromInputUnsafe(timeout))}`)) }),
          Stream.mapError((e) => failure(`GET ${key}`, e instanceof Error ? e.message : String(e)))))
        : Effect.fail(failure(`GET ${key}`, notFound(res.status) ? "not found" : `HTTP ${res.status}`)))),
    getRange: (key, start, length) => Effect.scoped(Effect.flatMap(
      send(`GET ${key}`, () => HttpClientRequest.get(url(key)).pipe(HttpClientRequest.setHeader("range", `bytes=${start}-${start + length - 1}`))),
      (res) => {
        if (res.status !== 206 && res.status !== 200) return Effect.fail(failure(`GET ${key}`, notFound(res.status) ? "not found" : `HTTP ${res.status}`))
        return Effect.flatMap(Effect.mapError(res.arrayBuffer, (e) => failure(`GET ${key}`, e.message)), (body) => {
          // a server that ignores Range sends the whole blob
          const bytes = res.status === 200 ? new Uint8Array(body, start, Math.max(0, Math.min(length, body.byteLength - start))) : new Uint8Array(body)
          return bytes.length === length ? Effect.succeed(bytes) : Effect.fail(failure(`GET ${key}`, `got ${bytes.length} of ${length} bytes`))
        })
      })),
    remove: (key) => Effect.scoped(Effect.flatMap(send(`DELETE ${key}`, () => HttpClientRequest.delete(url(key))), (res) =>
      (res.status >= 200 && res.status < 300) || notFound(res.status) ? Effect.void : Effect.fail(failure(`DELETE ${key}`, `the server answered HTTP ${res.status}`)))),
    putBytes: (key, bytes, contentType) => put(key, () => HttpClientRequest.put(url(key)).pipe(HttpClientRequest.bodyUint8Array(bytes, contentType))),
    putFile: (key, file, contentType) => Effect.ensuring(
      put(key, () => HttpClientRequest.put(url(key)).pipe(HttpClientRequest.bodyStream(
        readFileStream(file, (e) => e),
        { contentType, contentLength: statSync(file).size }
      ))),
      Effect.sync(() => rmSync(file, { force: true }))
    )
  }
})
