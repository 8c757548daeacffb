/**
 * A static HTTP file server on 127.0.0.1 in a process of its own (a test that waits for a build
 * with spawnSync blocks its own event loop, so the server cannot live in it). Serves the files of
 * `dir`; `/redirect/<path>` answers 302 to `/<path>`; anything missing is a 404. Each request is
 * appended to `<dir>/../requests.log`.
 */
import { spawn, type ChildProcess } from "node:child_process"

const script = `
const { createServer } = require("node:http")
const { readFile, appendFileSync } = require("node:fs")
const { join, dirname } = require("node:path")
const dir = process.argv[1]
const server = createServer((req, res) => {
  appendFileSync(join(dirname(dir), "requests.log"), req.url + "\\n")
  if (req.url.startsWith("/redirect/")) { res.writeHead(302, { location: req.url.slice("/redirect".length) }).end(); return }
  const path = join(dir, decodeURIComponent(req.url.split("?")[0]))
  if (!path.startsWith(dir + "/")) { res.writeHead(400).end(); return }
  readFile(path, (err, data) => {
    if (err) { res.writeHead(404, "Not Found").end("not found\\n"); return }
    res.writeHead(200, { "content-length": data.length }).end(data)
  })
})
server.listen(0, "127.0.0.1", () => console.log(server.address().port))`

export interface FileServer {
  readonly port: number
  readonly url: string
  readonly close: () => void
}

export const startFileServer = (dir: string): Promise<FileServer> => new Promise((resolve, reject) => {
  const child: ChildProcess = spawn(process.execPath, ["-e", script, dir], { stdio: ["ignore", "pipe", "inherit"] })
  child.once("exit", (code) => reject(new Error(`the file server exited (${code})`)))
  child.stdout!.once("data", (chunk: Buffer) => {
    const port = Number(chunk.toString().trim())
    resolve({ port, url: `http://127.0.0.1:${port}`, close: () => { child.kill() } })
  })
})
