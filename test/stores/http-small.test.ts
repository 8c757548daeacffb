/**
 * Whole small bodies over node:http (narinfos, small NARs, HEAD): the body as sent, statuses passed
 * through, and transport faults (a reset, a body cut short, a server that stalls, more bytes than
 * announced, nothing listening) as TransportError.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createServer, type Server } from "node:http"
import { makeSmallRequests, TransportError } from "../../src/layers/binary-cache/http-small.ts"

let server: Server
let base: string

beforeAll(async () => {
  server = createServer((req, res) => {
    switch (req.url) {
      case "/ok": res.writeHead(200, { "content-length": 5 }).end("hello"); break
      case "/chunked": res.writeHead(200); res.write("hel"); res.end("lo"); break
      case "/missing": res.writeHead(404).end("not here"); break
      case "/broken": res.writeHead(503).end(); break
      case "/short": res.writeHead(200, { "content-length": 10 }); res.write("hello"); res.socket?.destroy(); break
      case "/reset": req.socket.destroy(); break
      case "/stall": res.writeHead(200, { "content-length": 10 }); res.write("hello"); break
      default: res.writeHead(500).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
})
afterAll(() => {
  server.closeAllConnections()
  server.close()
})

const text = (body: Uint8Array) => new TextDecoder().decode(body)

describe("small HTTP requests", () => {
  const small = () => makeSmallRequests(false, { maxSockets: 4, timeoutMs: 300 })

  it.effect("reads a body whole, with and without a Content-Length, over kept-alive connections", () => Effect.gen(function*() {
    const client = small()
    const results = yield* Effect.forEach(["/ok", "/chunked", "/ok", "/chunked", "/ok"], (path) => client.request("GET", base + path), { concurrency: 2 })
    expect(results.map((r) => [r.status, text(r.body)])).toEqual([[200, "hello"], [200, "hello"], [200, "hello"], [200, "hello"], [200, "hello"]])
    const head = yield* client.request("HEAD", base + "/ok")
    expect([head.status, head.body.length]).toEqual([200, 0])
    client.close()
  }))

  it.effect("passes other statuses through without their bodies", () => Effect.gen(function*() {
    const client = small()
    expect((yield* client.request("GET", base + "/missing")).status).toBe(404)
    expect((yield* client.request("GET", base + "/broken")).status).toBe(503)
    client.close()
  }))

  it.effect("fails with TransportError on resets, short bodies, stalls and refused connections", () => Effect.gen(function*() {
    const client = small()
    for (const url of [base + "/reset", base + "/short", base + "/stall", "http://127.0.0.1:1/ok"]) {
      const error = yield* Effect.flip(client.request("GET", url))
      expect(error, url).toBeInstanceOf(TransportError)
      if (url.endsWith("/stall")) expect(error.message).toMatch(/timed out/)
    }
    client.close()
  }))
})
