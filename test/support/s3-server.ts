/**
 * A real S3-compatible server for tests: s3rver (from npm) in a child process on 127.0.0.1 with its
 * own data directory, behind a small proxy, also on 127.0.0.1, that injects faults (S3 error
 * answers, connection resets, bodies cut short, requests held until released) and lets a test
 * wait for a request instead of sleeping.
 *
 * s3rver 3.7.1 stores an open multipart upload as a directory `<bucket>/._S3rver_uploads/<id>/`
 * but does not implement AbortMultipartUpload (DELETE ?uploadId answers 405). The proxy answers
 * that call itself by removing the directory once s3rver has answered the upload's requests in
 * flight, and only while s3rver is up (a killed server cannot abort anything); later requests for
 * the upload get NoSuchUpload, as from S3. `openUploads` lists those directories: the ground truth
 * for "no multipart upload left open".
 */
import { spawn, type ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { afterAll, beforeAll } from "vitest"
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))
const nodeBin = join(root, "node_modules/.bin/node")
const s3rverBin = join(root, "node_modules/s3rver/bin/s3rver.js")

/** s3rver's built-in account; other keys are refused (InvalidAccessKeyId). */
export const s3Credentials = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" } as const

export type Fault =
  | { readonly kind: "error"; readonly status: number; readonly code: string }
  | { readonly kind: "reset" }
  /** Forward, but cut the response body after this many bytes and drop the connection. */
  | { readonly kind: "truncate"; readonly after: number }
  /** Keep the request waiting until `release` is called (then forward it, or drop it if s3rver is down). */
  | { readonly kind: "hold" }

export interface SeenRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage["headers"]
  /** The status the proxy answered with (0 for a dropped connection); set once known. */
  status?: number
}

export interface S3TestServer {
  /** The proxy's base URL, `http://127.0.0.1:PORT` (a bucket's path-style URL is `${url}/${bucket}`). */
  readonly url: string
  /** s3rver's own URL (no proxy). */
  readonly directUrl: () => string
  readonly dataDir: string
  readonly requests: Array<SeenRequest>
  /** Decide a fault for a request (undefined: forward it). */
  fault: ((req: SeenRequest) => Fault | undefined) | undefined
  /** Resolves with the first request (from now on) that matches. */
  readonly waitFor: (match: (req: SeenRequest) => boolean) => Promise<SeenRequest>
  /** Resolves with the first request (from now on) that matches once the proxy has answered it. */
  readonly waitForAnswer: (match: (req: SeenRequest) => boolean) => Promise<SeenRequest>
  /** Lets held requests go on. */
  readonly release: () => void
  /** `s3://BUCKET?endpoint=…&scheme=http&region=us-east-1` plus extra parameters. */
  readonly storeUri: (bucket: string, params?: Record<string, string>) => string
  /** SIGKILLs s3rver and waits until it is gone. */
  readonly kill: () => Promise<void>
  /** Starts s3rver again on the same data directory. */
  readonly restart: () => Promise<void>
  /** The keys of the multipart uploads open in a bucket. */
  readonly openUploads: (bucket: string) => Array<string>
  readonly close: () => Promise<void>
}

const startS3rver = (dataDir: string): Promise<{ child: ChildProcess; port: number }> => new Promise((resolve, reject) => {
  const child = spawn(nodeBin, [s3rverBin, "-d", dataDir, "-a", "127.0.0.1", "-p", "0", "--silent"], { stdio: ["ignore", "pipe", "inherit"] })
  child.once("exit", (code) => reject(new Error(`s3rver exited with ${code} before listening`)))
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const m = /listening on [\d.]+:(\d+)/.exec(line)
    if (m) resolve({ child, port: Number(m[1]) })
  })
})

const errorXml = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>proxy</RequestId></Error>`

export const startS3Server = async (dataDir: string): Promise<S3TestServer> => {
  let upstream: { child: ChildProcess; port: number } | undefined = await startS3rver(dataDir)
  const held: Array<() => void> = []
  type Waiter = { match: (r: SeenRequest) => boolean; resolve: (r: SeenRequest) => void }
  const waiters: Array<Waiter> = []
  const answerWaiters: Array<Waiter> = []
  const notify = (list: Array<Waiter>, seen: SeenRequest) => {
    for (const w of list.splice(0)) { if (w.match(seen)) w.resolve(seen); else list.push(w) }
  }
  const answered = (seen: SeenRequest, status: number) => { seen.status = status; notify(answerWaiters, seen) }
  const uploadsDir = (bucket: string) => join(dataDir, bucket, "._S3rver_uploads")

  const answer = (res: ServerResponse, seen: SeenRequest, status: number, body = "") => {
    answered(seen, status)
    res.writeHead(status, body ? { "content-type": "application/xml" } : {}).end(body)
  }
  const drop = (req: IncomingMessage, seen: SeenRequest) => { answered(seen, 0); req.socket.destroy() }

  // Requests of a multipart upload are forwarded only once their body is whole, and counted until
  // s3rver has answered them, so an abort can wait for them: s3rver handles requests
  // asynchronously and would otherwise recreate an aborted upload's directory for a late part.
  const inFlight = new Map<string, number>()
  const idle = new Map<string, Array<() => void>>()
  const settled = (uploadId: string) => {
    const n = (inFlight.get(uploadId) ?? 1) - 1
    inFlight.set(uploadId, n)
    if (n === 0) for (const wake of idle.get(uploadId)?.splice(0) ?? []) wake()
  }
  const whenIdle = (uploadId: string) => new Promise<void>((resolve) => {
    if ((inFlight.get(uploadId) ?? 0) === 0) resolve()
    else idle.set(uploadId, [...(idle.get(uploadId) ?? []), resolve])
  })

  const forwardUploadRequest = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest, bucket: string, uploadId: string) => {
    const chunks: Array<Buffer> = []
    req.on("data", (d: Buffer) => chunks.push(d))
    req.on("end", () => {
      if (!upstream) return drop(req, seen)
      if (!existsSync(join(uploadsDir(bucket), uploadId))) return answer(res, seen, 404, errorXml("NoSuchUpload", "no such upload"))
      inFlight.set(uploadId, (inFlight.get(uploadId) ?? 0) + 1)
      let done = false
      const settle = () => { if (!done) { done = true; settled(uploadId) } }
      const up = request({ host: "127.0.0.1", port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
        answered(seen, upRes.statusCode ?? 0)
        res.writeHead(upRes.statusCode ?? 502, upRes.headers)
        upRes.pipe(res)
        upRes.on("end", settle)
        upRes.on("close", settle)
      })
      up.on("error", () => { settle(); drop(req, seen) })
      up.end(Buffer.concat(chunks))
    })
  }

  const forward = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest, truncateAfter?: number) => {
    if (!upstream) return drop(req, seen)
    const url = new URL(seen.url, "http://proxy")
    const uploadId = url.searchParams.get("uploadId")
    if (uploadId !== null) return forwardUploadRequest(req, res, seen, url.pathname.split("/")[1]!, uploadId)
    const up = request({ host: "127.0.0.1", port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      answered(seen, upRes.statusCode ?? 0)
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      if (truncateAfter === undefined) { upRes.pipe(res); return }
      let sent = 0
      upRes.on("data", (chunk: Buffer) => {
        if (sent >= truncateAfter) return
        const part = chunk.subarray(0, truncateAfter - sent)
        sent += part.length
        if (sent < truncateAfter) { res.write(part); return }
        upRes.destroy()
        res.write(part, () => res.destroy())
      })
      upRes.on("end", () => res.end())
    })
    up.on("error", () => drop(req, seen))
    // a client that goes away mid-request takes the upstream request with it, as through any proxy
    req.on("close", () => { if (!req.complete) up.destroy() })
    req.pipe(up)
  }

  /**
   * AbortMultipartUpload, which s3rver lacks: once s3rver has answered the upload's requests in
   * flight, remove the upload's directory (only while s3rver is up).
   */
  const abortUpload = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest, bucket: string, uploadId: string) => {
    if (!upstream) return drop(req, seen)
    const dir = join(uploadsDir(bucket), uploadId)
    if (!/^[0-9a-f]+$/.test(uploadId) || !existsSync(dir)) return answer(res, seen, 404, errorXml("NoSuchUpload", "no such upload"))
    void whenIdle(uploadId).then(() => {
      if (!upstream) return drop(req, seen)
      rmSync(dir, { recursive: true, force: true })
      answer(res, seen, 204)
    })
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const seen: SeenRequest = { method: req.method ?? "", url: req.url ?? "", headers: req.headers }
    state.requests.push(seen)
    notify(waiters, seen)
    const fault = state.fault?.(seen)
    const go = () => {
      if (req.destroyed || req.socket.destroyed) return drop(req, seen) // a held request whose client went away
      const url = new URL(seen.url, "http://proxy")
      const uploadId = url.searchParams.get("uploadId")
      if (seen.method === "DELETE" && uploadId !== null) return abortUpload(req, res, seen, url.pathname.split("/")[1]!, uploadId)
      forward(req, res, seen, fault?.kind === "truncate" ? fault.after : undefined)
    }
    if (!fault || fault.kind === "truncate") return go()
    if (fault.kind === "hold") { held.push(go); return }
    if (fault.kind === "reset") return drop(req, seen)
    req.resume()
    req.on("end", () => answer(res, seen, fault.status, errorXml(fault.code, "injected by the test proxy")))
  }

  const server: Server = createServer(handle)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  const address = server.address()
  const port = typeof address === "object" && address ? address.port : 0

  const kill = async () => {
    const current = upstream
    upstream = undefined
    if (!current || current.child.exitCode !== null) return
    await new Promise<void>((resolve) => { current.child.once("exit", () => resolve()); current.child.kill("SIGKILL") })
  }

  const state: S3TestServer = {
    url: `http://127.0.0.1:${port}`,
    directUrl: () => `http://127.0.0.1:${upstream?.port ?? 0}`,
    dataDir,
    requests: [],
    fault: undefined,
    waitFor: (match) => new Promise((resolve) => { waiters.push({ match, resolve }) }),
    waitForAnswer: (match) => new Promise((resolve) => { answerWaiters.push({ match, resolve }) }),
    release: () => { for (const go of held.splice(0)) go() },
    storeUri: (bucket, params = {}) => {
      const query = new URLSearchParams({ endpoint: `127.0.0.1:${port}`, scheme: "http", region: "us-east-1", ...params })
      return `s3://${bucket}?${query.toString().replaceAll("%2F", "/")}`
    },
    kill,
    restart: async () => { await kill(); upstream = await startS3rver(dataDir) },
    openUploads: (bucket) => existsSync(uploadsDir(bucket))
      ? readdirSync(uploadsDir(bucket)).map((id) => readFileSync(join(uploadsDir(bucket), id, "key"), "utf8"))
      : [],
    close: async () => {
      state.release()
      await kill()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  return state
}

/**
 * For a test file: a scratch directory, and an s3rver started before the file's tests and stopped
 * (scratch removed) after them; the AWS SDK is pointed at s3rver's account and at no shared config.
 */
export const useS3Server = (prefix: string): { readonly scratch: string; readonly server: () => S3TestServer } => {
  const scratch = mkdtempSync(join(tmpdir(), prefix))
  Object.assign(process.env, s3Credentials, { AWS_EC2_METADATA_DISABLED: "true", AWS_CONFIG_FILE: join(scratch, "none"), AWS_SHARED_CREDENTIALS_FILE: join(scratch, "none") })
  let server: S3TestServer | undefined
  beforeAll(async () => { server = await startS3Server(join(scratch, "s3")) })
  afterAll(async () => {
    await server?.close()
    rmSync(scratch, { recursive: true, force: true })
  })
  return { scratch, server: () => server! }
}
