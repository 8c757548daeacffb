/**
 * Small whole-body requests to an HTTP(S) cache (GET of a narinfo or a small NAR, HEAD) straight on
 * node:http(s), over kept-alive connections: one callback per request, the body read into one
 * buffer of the announced size. A copy of a closure of 10,000 paths makes 20,000 of these; through
 * Effect's HttpClient over undici each left ~10 times its body in garbage (request and response
 * objects, a web stream, an abort controller and signal, undici's own parser state) and loading
 * undici alone takes ~28 MiB of RSS; node:http is in Node's binary already. Streamed bodies, ranges
 * and uploads still go through the HttpClient (http-blobs.ts).
 */
import { Effect, Schema } from "effect"
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http"
import { Agent as HttpsAgent, request as httpsRequest } from "node:https"

export interface SmallResponse {
  readonly status: number
  /** The whole body (empty for HEAD and for statuses whose body is not read). */
  readonly body: Uint8Array
}

/** A request that failed in transport (reset, refused, timed out, cut short): worth retrying. */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  reason: Schema.String
}) {
  override get message() { return this.reason }
}

const empty = new Uint8Array(0)

export interface SmallRequests {
  /** GET (the body read whole, for 2xx answers) or HEAD; fails with TransportError. */
  readonly request: (method: "GET" | "HEAD", url: string) => Effect.Effect<SmallResponse, TransportError>
  /** Closes the kept-alive connections. */
  readonly close: () => void
}

export const makeSmallRequests = (https: boolean, options: { readonly maxSockets: number; readonly timeoutMs: number }): SmallRequests => {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, scheduling: "lifo" as const }
  const agent = https ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions)
  const send = https ? httpsRequest : httpRequest
  const seconds = options.timeoutMs / 1000

  const request = (method: "GET" | "HEAD", url: string) => Effect.callback<SmallResponse, TransportError>(function(resume) {
    let done = false
    const fail = (reason: string) => {
      if (done) return
      done = true
      req?.destroy()
      resume(Effect.fail(new TransportError({ reason })))
    }
    const succeed = (response: SmallResponse) => {
      if (done) return
      done = true
      resume(Effect.succeed(response))
    }
    let req: ClientRequest
    try {
      req = send(url, { method, agent }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0
        if (method === "HEAD" || status < 200 || status >= 300) {
          res.resume()
          res.on("end", () => succeed({ status, body: empty }))
          res.on("error", (e) => fail(e.message))
          return
        }
        const length = Number(res.headers["content-length"] ?? NaN)
        // With a Content-Length, the chunks are copied into one buffer of that size as they come.
        let body: Uint8Array | undefined = Number.isSafeInteger(length) && length >= 0 ? new Uint8Array(length) : undefined
        let chunks: Array<Buffer> | undefined = body === undefined ? [] : undefined
        let received = 0
        res.on("data", (chunk: Buffer) => {
          if (body !== undefined) {
            if (received + chunk.length > body.length) return fail(`the server sent more than the ${body.length} bytes it announced`)
            body.set(chunk, received)
          } else chunks!.push(chunk)
          received += chunk.length
        })
        res.on("end", () => {
          if (body === undefined) { body = Buffer.concat(chunks!); chunks = undefined }
          if (received !== body.length) return fail(`the body ended after ${received} of ${body.length} bytes`)
          succeed({ status, body })
        })
        res.on("close", () => { if (!res.complete) fail(`the connection closed after ${received} bytes of the body`) })
        res.on("error", (e) => fail(e.message))
      })
    } catch (e) {
      done = true
      return resume(Effect.fail(new TransportError({ reason: e instanceof Error ? e.message : String(e) })))
    }
    // Socket inactivity: no answer, or a body that stops moving, for this long.
    req.setTimeout(options.timeoutMs, () => fail(`timed out: no data for ${seconds} s`))
    req.on("error", (e) => fail(e.message))
    req.end()
    return Effect.sync(() => { done = true; req.destroy() })
  })

  return { request, close: () => agent.destroy() }
}
