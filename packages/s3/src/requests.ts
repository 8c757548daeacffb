/**
 * S3 requests through the AWS SDK client, as effects: interruptible (the SDK request is aborted),
 * bounded in number, and retried with jittered exponential backoff when S3 says to slow down
 * (503 SlowDown, 429, other 5xx) or the connection breaks (reset, refused, timeout). The SDK's own
 * retries are off so that this one policy governs every request.
 *
 * Credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID/… variables, the shared
 * config and credentials files with `profile`, SSO, container and instance roles); they are
 * never part of a message.
 */
import type { S3Client } from "@aws-sdk/client-s3"
import { Duration, Effect, Schedule, Schema, type Scope, Semaphore } from "effect"
import type { S3Location } from "./location.ts"
import type { S3Sdk } from "./sdk.ts"

export class S3RequestError extends Schema.TaggedError<S3RequestError>()("S3RequestError", {
  operation: Schema.String,
  /** The HTTP status, or 0 when there was no answer. */
  status: Schema.Number,
  /** S3's error code (`NoSuchKey`, `SlowDown`, …) or the socket error code. */
  code: Schema.String,
  reason: Schema.String,
  retryable: Schema.Boolean
}) {
  override get message() {
    return `${this.operation}: ${this.code}${this.status ? ` (HTTP ${this.status})` : ""}${this.reason && this.reason !== this.code ? `: ${this.reason}` : ""}`
  }
  get notFound() { return this.status === 404 || this.code === "NoSuchKey" || this.code === "NotFound" }
}

const throttling = new Set(["SlowDown", "Throttling", "ThrottlingException", "TooManyRequestsException", "RequestTimeout",
  "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "RequestThrottled", "TimeoutError"])
const transientSocket = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "EAI_AGAIN",
  "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_SOCKET", "ERR_STREAM_PREMATURE_CLOSE"])

/** Classifies anything the SDK (or a response body) throws. */
export const requestError = (operation: string, cause: unknown): S3RequestError => {
  const e = (typeof cause === "object" && cause !== null ? cause : { message: String(cause) }) as {
    name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }
  }
  const status = e.$metadata?.httpStatusCode ?? 0
  const code = e.code && transientSocket.has(e.code) ? e.code : (e.name && e.name !== "Error" ? e.name : e.code ?? "Error")
  const reason = (e.message ?? "").replace(/\s+/g, " ").slice(0, 300)
  const retryable = status >= 500 || status === 429 || throttling.has(code) || transientSocket.has(code)
    || /socket hang up|aborted|premature close|ECONNRESET/i.test(reason)
  return new S3RequestError({ operation, status, code, reason, retryable })
}

export interface RequestOptions {
  /** Requests in flight at once (HEAD/GET/PUT/part uploads together). */
  readonly concurrency?: number
  /** Attempts per request (1 = no retry). */
  readonly attempts?: number
  /** First backoff delay; doubled each retry, with jitter. */
  readonly baseDelay?: Duration.Input
}

export interface S3Requests {
  readonly sdk: typeof S3Sdk
  readonly client: S3Client
  readonly bucket: string
  /** Runs one SDK call (given the abort signal of the effect) with the retry policy. */
  readonly run: <A>(operation: string, call: (signal: AbortSignal) => Promise<A>) => Effect.Effect<A, S3RequestError>
  /** As `run`, but keeps trying for longer at a steady pace: for clean-up (aborting an upload). */
  readonly runPersistently: <A>(operation: string, call: (signal: AbortSignal) => Promise<A>) => Effect.Effect<A, S3RequestError>
}

export const makeClient = (sdk: typeof S3Sdk, location: S3Location): S3Client => new sdk.S3Client({
  region: location.region,
  ...(location.endpoint ? { endpoint: location.endpoint } : {}),
  forcePathStyle: location.forcePathStyle,
  ...(location.profile ? { profile: location.profile } : {}),
  maxAttempts: 1,
  // The SDK's default (WHEN_SUPPORTED) sends streamed bodies as aws-chunked with a trailing
  // checksum, which some S3-compatible servers store literally: only send checksums S3 requires.
  requestChecksumCalculation: "WHEN_REQUIRED",
  responseChecksumValidation: "WHEN_REQUIRED",
  requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 }
})

/** The client lives as long as the scope: its sockets are closed with it. */
export const makeRequests = (sdk: typeof S3Sdk, location: S3Location, options: RequestOptions = {}): Effect.Effect<S3Requests, never, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* Effect.acquireRelease(Effect.sync(() => makeClient(sdk, location)), (c) => Effect.sync(() => c.destroy()))
    const semaphore = yield* Semaphore.make(options.concurrency ?? 16)
    const attempt = <A>(operation: string, call: (signal: AbortSignal) => Promise<A>) =>
      semaphore.withPermits(1)(Effect.tryPromise({ try: call, catch: (cause) => requestError(operation, cause) }))
    const backoff = Schedule.exponential(options.baseDelay ?? Duration.millis(100), 2).pipe(Schedule.jittered)
    return {
      sdk,
      client,
      bucket: location.bucket,
      run: (operation, call) => attempt(operation, call).pipe(
        Effect.retry({ schedule: backoff, times: (options.attempts ?? 6) - 1, while: (e) => e.retryable })),
      runPersistently: (operation, call) => attempt(operation, call).pipe(
        Effect.retry({ schedule: Schedule.spaced(Duration.millis(500)), times: 60, while: (e) => e.retryable }))
    }
  })
