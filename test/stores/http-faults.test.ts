/**
 * An HTTP binary cache that misbehaves: a server that stalls in the middle of a NAR, one that resets
 * the connection, and requests that try to escape `b3 serve`'s cache. Each copy fails with a clear
 * error in bounded time, and nothing invalid or temporary is left in the target store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer, type Server, type ServerResponse } from "node:http"
import { request } from "node:http"
import { join, normalize } from "node:path"
import { b3, b3Bin, runB3 } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

let scratch: string
let cacheDir: string
let storePath: string
let server: Server
let port: number
let mode: "stall" | "reset" = "stall"

/** Serves the cache files; NAR bodies stall or reset half-way depending on `mode`. */
const serve = (url: string, res: ServerResponse) => {
  const file = join(cacheDir, normalize(decodeURIComponent(url)))
  if (!file.startsWith(cacheDir) || !existsSync(file)) { res.writeHead(404).end(); return }
  const body = readFileSync(file)
  if (!url.startsWith("/nar/")) { res.writeHead(200, { "content-length": body.length }).end(body); return }
  res.writeHead(200, { "content-length": body.length })
  res.write(body.subarray(0, body.length >> 1))
  if (mode === "reset") res.socket?.destroy()
  // "stall": the rest never comes
}

beforeAll(async () => {
  scratch = makeScratch("b3-http-faults-")
  cacheDir = join(scratch, "cache")
  writeFileSync(join(scratch, "payload"), Buffer.alloc(1 << 20, 7))
  const source = `local?root=${join(scratch, "source")}`
  storePath = b3(["store", "add", "--store", source, join(scratch, "payload")])
  b3(["copy", "--from", source, "--to", `file://${cacheDir}?compression=none`, "--no-check-sigs", storePath])
  server = createServer((req, res) => serve(req.url ?? "/", res))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  port = (server.address() as { port: number }).port
}, 60_000)
afterAll(() => {
  server.closeAllConnections()
  server.close()
  removeScratch(scratch)
})

const copyInto = (target: string) =>
  runB3(["copy", "--from", `http://127.0.0.1:${port}?timeout=1`, "--to", `local?root=${target}`, "--no-check-sigs", storePath])

const expectNothingLeft = (target: string) => {
  expect(runB3(["path-info", "--store", `local?root=${target}`, storePath]).status).toBe(3)
  const storeDir = join(target, "nix/store")
  expect(existsSync(storeDir) ? readdirSync(storeDir) : []).toEqual([])
}

describe("HTTP cache faults", () => {
  it("a server that stalls mid-NAR: the copy fails after the timeout and retries, nothing enters the store", () => {
    mode = "stall"
    const target = join(scratch, "stall-target")
    const result = copyInto(target)
    expect(result.status).not.toBe(0)
    expect(result.stderr).toMatch(/^b3: .*(no data|timed out|timeout)/i)
    expectNothingLeft(target)
  }, 60_000)

  it("a server that resets the connection mid-NAR: a clear error, nothing enters the store", () => {
    mode = "reset"
    const target = join(scratch, "reset-target")
    const result = copyInto(target)
    expect(result.status).not.toBe(0)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expectNothingLeft(target)
  }, 60_000)

  it("b3 serve answers path-traversal requests with 404 and never a file outside the cache", async () => {
    writeFileSync(join(scratch, "secret"), "do not serve\n")
    const child = spawn(b3Bin, ["serve", "--store", `file://${cacheDir}`, "--listen", "127.0.0.1:0", "--quiet"], { stdio: ["ignore", "pipe", "ignore"] })
    try {
      const servePort = await new Promise<number>((resolve) => {
        let seen = ""
        child.stdout.on("data", (chunk: Buffer) => {
          seen += chunk.toString()
          const m = /127\.0\.0\.1:(\d+)/.exec(seen)
          if (m) resolve(Number(m[1]))
        })
      })
      const get = (path: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
        // node:http sends the path as given (no normalisation), as an attacker's client would.
        request({ host: "127.0.0.1", port: servePort, path, method: "GET" }, (res) => {
          let body = ""
          res.on("data", (c: Buffer) => { body += c.toString() })
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
        }).on("error", reject).end()
      })
      for (const path of ["/../secret", "/nar/../../secret", "/%2e%2e/secret", "/nar/%2e%2e%2f%2e%2e%2fsecret", "/..%2fsecret", "//etc/passwd"]) {
        const response = await get(path)
        expect(response.status, path).toBeGreaterThanOrEqual(400)
        expect(response.status, path).toBeLessThan(500)
        expect(response.body).not.toContain("do not serve")
        expect(response.body).not.toContain("root:")
      }
      expect((await get("/nix-cache-info")).status).toBe(200)
    } finally {
      child.kill("SIGTERM")
    }
  }, 60_000)
})
