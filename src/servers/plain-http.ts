/**
 * Requests and responses as plain values, so that a front end (the web view) is a function that
 * any HTTP server can mount: the server hands it the method and the URL below the mount point and
 * writes the status, headers and body it gets back.
 */
import { Effect } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"

export interface PlainRequest {
  readonly method: string
  /** Path and query below the mount point, starting with `/`. */
  readonly url: string
}

export interface PlainResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | Uint8Array
}

/** Never fails: errors are responses. */
export type PlainHandler = (request: PlainRequest) => Effect.Effect<PlainResponse>

/** A handler mounted under a URL prefix such as `/ui` (no trailing slash). */
export interface Mount {
  readonly prefix: string
  readonly handle: PlainHandler
}

/**
 * The response of `mount` to a request, or undefined when the URL is not under its prefix. The
 * prefix alone is redirected to the prefix with a slash, so the page's relative URLs resolve below it.
 */
export const respondUnder = (mount: Mount, method: string, url: string): Effect.Effect<PlainResponse> | undefined => {
  const path = url.split("?")[0]!
  if (path === mount.prefix) {
    return Effect.succeed({ status: 308, headers: { location: `${mount.prefix}/${url.slice(path.length)}` }, body: "" })
  }
  return path.startsWith(`${mount.prefix}/`) ? mount.handle({ method, url: url.slice(mount.prefix.length) }) : undefined
}

/**
 * `mount` as a handler of a `node:http` server (the binary-cache server's `mounts`): true when the
 * request is under its prefix, and then the response is written when the handler's effect is done.
 */
export const nodeMount = (mount: Mount) => (request: IncomingMessage, response: ServerResponse): boolean => {
  const method = request.method ?? "GET"
  const answer = respondUnder(mount, method, request.url ?? "/")
  if (answer === undefined) return false
  Effect.runPromise(answer).then((r) => {
    const body = typeof r.body === "string" ? Buffer.from(r.body) : r.body
    response.writeHead(r.status, { ...r.headers, "content-length": body.length })
    response.end(method === "HEAD" ? undefined : body)
  }, () => {
    response.writeHead(500, { "content-type": "text/plain" })
    response.end("500 internal error\n")
  })
  return true
}
