/**
 * A test HTTP proxy that adds a fixed latency to every request, for benchmarks of network stores on
 * one machine: each request waits `latencyMs` before it is forwarded (concurrent requests wait at
 * the same time, as round trips to a distant server do), then goes to the upstream over kept-alive
 * connections and its answer is streamed back. With `serveDir` and no upstream, it serves the files
 * of a directory itself (GET and HEAD; 404 for anything missing), so a binary cache directory can be
 * put "far away" with one process.
 *
 *   node bench/support/latency-proxy.ts --latency 20 --serve-dir /tmp/cache      # prints "listening on http://127.0.0.1:PORT"
 *   node bench/support/latency-proxy.ts --latency 20 --upstream http://127.0.0.1:8080
 */
import { createReadStream, statSync } from "node:fs"
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { join, normalize } from "node:path"

export interface LatencyProxyOptions {
  /** Added to each request, in milliseconds. */
  readonly latencyMs: number
  /** Where requests go (`http://host:port`), or… */
  readonly upstream?: string
  /** …a directory served directly. */
  readonly serveDir?: string
  /** Port to listen on (0: any free one). */
  readonly port?: number
}

export interface LatencyProxy {
  readonly url: string
  readonly server: Server
  /** Requests answered so far. */
  readonly requests: () => number
  /** Client connections accepted so far (with keep-alive, far fewer than requests). */
  readonly connections: () => number
  readonly close: () => Promise<void>
}

const serveFile = (dir: string, req: IncomingMessage, res: ServerResponse): void => {
  const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)
  const file = join(dir, normalize(path).replace(/^(\.\.(\/|$))+/, ""))
  let size: number
  try {
    const st = statSync(file)
    if (!st.isFile()) throw new Error("not a file")
    size = st.size
  } catch {
    res.writeHead(404, { "content-length": 0 }).end()
    return
  }
  res.writeHead(200, { "content-length": size, "content-type": "application/octet-stream" })
  if (req.method === "HEAD") { res.end(); return }
  createReadStream(file).pipe(res)
}

export const startLatencyProxy = (options: LatencyProxyOptions): Promise<LatencyProxy> => new Promise((resolve, reject) => {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 })
  const upstream = options.upstream === undefined ? undefined : new URL(options.upstream)
  let count = 0
  const server = createServer((req, res) => {
    setTimeout(() => {
      count++
      if (upstream === undefined) { serveFile(options.serveDir!, req, res); return }
      const forwarded = httpRequest({
        agent, host: upstream.hostname, port: upstream.port, method: req.method,
        path: upstream.pathname.replace(/\/$/, "") + (req.url ?? "/"), headers: { ...req.headers, host: upstream.host }
      }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      })
      forwarded.on("error", (e) => { if (!res.headersSent) res.writeHead(502).end(String(e)); else res.destroy() })
      req.pipe(forwarded)
    }, options.latencyMs)
  })
  let connections = 0
  server.on("connection", () => { connections++ })
  server.keepAliveTimeout = 60_000
  server.on("error", reject)
  server.listen(options.port ?? 0, "127.0.0.1", () => {
    const port = (server.address() as AddressInfo).port
    resolve({
      url: `http://127.0.0.1:${port}`, server, requests: () => count, connections: () => connections,
      close: () => new Promise((done) => { agent.destroy(); server.closeAllConnections(); server.close(() => done()) })
    })
  })
})

// As a program: a separate process, so that its CPU and memory are not counted as the client's.
if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => { const i = process.argv.indexOf(`--${name}`); return i < 0 ? undefined : process.argv[i + 1] }
  const serveDir = arg("serve-dir")
  const upstream = arg("upstream")
  const proxy = await startLatencyProxy({
    latencyMs: Number(arg("latency") ?? 20), port: Number(arg("port") ?? 0),
    ...(serveDir !== undefined ? { serveDir } : {}), ...(upstream !== undefined ? { upstream } : {})
  })
  console.log(`listening on ${proxy.url}`)
  const report = () => console.log(`requests: ${proxy.requests()}, connections: ${proxy.connections()}`)
  process.on("SIGUSR2", report)
  process.on("SIGTERM", () => { report(); void proxy.close().then(() => process.exit(0)) })
}
