/**
 * A minimal HTTP server over a directory, for tests: GET/HEAD serve files, PUT stores them (like
 * an upload-enabled binary cache). Only on 127.0.0.1. Optional fault injection per request.
 */
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, statSync } from "node:fs"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { dirname, join, normalize } from "node:path"

export interface PutServer {
  readonly url: string
  readonly requests: Array<string>
  readonly close: () => Promise<void>
  /** Return true to have the server handle the request itself (fault injection). */
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean
}

export const startPutServer = (dir: string): Promise<PutServer> => new Promise((resolve) => {
  mkdirSync(dir, { recursive: true })
  const state: PutServer & { server?: Server } = {
    url: "",
    requests: [],
    close: () => new Promise((r) => { state.server!.closeAllConnections(); state.server!.close(() => r()) })
  }
  const server = createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url}`)
    if (state.intercept?.(req, res)) return
    const path = normalize(join(dir, decodeURIComponent((req.url ?? "/").split("?")[0]!)))
    if (!path.startsWith(dir)) { res.writeHead(400).end(); return }
    if (req.method === "PUT") {
      mkdirSync(dirname(path), { recursive: true })
      const tmp = `${path}.upload-${process.pid}`
      const out = createWriteStream(tmp)
      req.pipe(out)
      out.on("finish", () => { renameSync(tmp, path); res.writeHead(201).end() })
      return
    }
    if (!existsSync(path) || !statSync(path).isFile()) { res.writeHead(404).end(); return }
    res.writeHead(200, { "content-length": String(statSync(path).size) })
    if (req.method === "HEAD") { res.end(); return }
    createReadStream(path).pipe(res)
  })
  state.server = server
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    Object.assign(state, { url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` })
    resolve(state)
  })
})
