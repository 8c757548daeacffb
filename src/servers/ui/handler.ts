/**
 * The web view of a store (`b3 serve --ui`, `b3 ui`): a page and the JSON it loads, answered from
 * the services of the context (StoreRead; BuildLogs where the store keeps logs). It is a plain
 * handler (method and URL in, status, headers and body out) that any HTTP server mounts under a
 * prefix. Read-only; the only parameters are store paths (with a path inside one for files),
 * validated as such, and files are read out of NARs, never from a file system.
 *
 *   GET /                      the page (and /assets/<file>: its script and styles)
 *   GET /api/info              the store, its capabilities, the roots given
 *   GET /api/search?q=TEXT     paths whose name or hash part contains TEXT (store-path characters only)
 *   GET /api/path?path=P       path info, referrers, signatures checked against the trusted keys
 *   GET /api/closure?path=P    P's closure as a graph: sizes, references, dominators, added sizes
 *   GET /api/why?from=A&to=B   the shortest reference chain from A to B
 *   GET /api/hits?path=A&ref=B where A's NAR holds B's hash part: files, offsets, text around it
 *   GET /api/ls?path=P[/sub]   a directory's entries (or a file's facts) from P's NAR listing
 *   GET /api/file?path=P/sub   a file's first 1 MiB, as text when it is text
 *   GET /api/log?path=P        the build log of P (a .drv, or an output through its deriver)
 *   GET /api/diff?from=A&to=B  added, removed and changed paths between two closures
 */
import { Cause, Effect, Exit, Option, Stream } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { dirname, extname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as ContentAddress from "../../core/content-address.ts"
import * as Hash from "../../core/hash.ts"
import * as Signature from "../../core/signature.ts"
import * as StorePath from "../../core/store-path.ts"
import { decodeNar } from "../../nar/decode.ts"
import { narListing, type ListingNode } from "../../nar/listing.ts"
import { BuildLogs } from "../../services/build-logs.ts"
import { fingerprint, type PathInfo } from "../../core/path-info.ts"
import type { StoreError } from "../../services/store-errors.ts"
import { StoreRead } from "../../services/store-read.ts"
import type { PlainHandler, PlainResponse } from "../plain-http.ts"
import { describe, entriesOf, isText, nodeAt, sliceBytes } from "./files.ts"
import { closureGraph, diffClosures, whyDepends, type ClosureGraph, type Node } from "./graph.ts"
import { referenceHits } from "./precise.ts"

export interface UiOptions {
  /** Public keys whose signatures the page shows as trusted. */
  readonly trustedKeys?: ReadonlyArray<Signature.PublicKey>
  /** Store paths the start page offers (and search covers, with their closures, on stores that cannot list paths). */
  readonly roots?: ReadonlyArray<string>
  /** The built page (index.html, app.js, app.css); default: dist/ui of this checkout. */
  readonly assetsDir?: string
  /** Closures kept in memory (default 8). */
  readonly cachedClosures?: number
}

/** A request the handler turns into a response with this status. */
class HttpError {
  readonly status: number
  readonly message: string
  constructor(status: number, message: string) {
    this.status = status
    this.message = message
  }
}

const maxFileBytes = 1 << 20
const maxLogBytes = 8 << 20
const maxSearchResults = 200
/** Characters of store path names (and hash parts): what a search may contain. */
const searchRe = /^[A-Za-z0-9+\-._?=]{1,211}$/

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".svg": "image/svg+xml"
}

/** dist/ui of the checkout this code runs from (the bundle in dist/, or the sources in src/). */
export const defaultAssetsDir = (): string | undefined => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "dist", "ui", "index.html"))) return join(dir, "dist", "ui")
    if (dirname(dir) === dir) return undefined
  }
}

/** The built page's files, read once: only these names are ever served. */
const loadAssets = (dir: string | undefined): Map<string, Uint8Array> => {
  const assets = new Map<string, Uint8Array>()
  if (dir === undefined || !existsSync(dir)) return assets
  const walk = (sub: string) => {
    for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const rel = sub === "" ? entry.name : `${sub}/${entry.name}`
      if (entry.isDirectory()) walk(rel)
      else if (entry.isFile() && contentTypes[extname(entry.name)] !== undefined) assets.set(rel, readFileSync(join(dir, rel)))
    }
  }
  walk("")
  return assets
}

const json = (value: unknown, status = 200): PlainResponse =>
  ({ status, headers: { "content-type": "application/json", "cache-control": "no-store" }, body: JSON.stringify(value) })

export const makeUiHandler = (options: UiOptions = {}): Effect.Effect<PlainHandler, never, StoreRead> => Effect.gen(function*() {
  const store = yield* StoreRead
  const logs = yield* Effect.serviceOption(BuildLogs)
  const storeDir = store.storeDir
  const trusted = options.trustedKeys ?? []
  const assets = loadAssets(options.assetsDir ?? defaultAssetsDir())
  const print = (path: StorePath.StorePath) => StorePath.print(path, storeDir)

  /** A store path given as a full path or a base name, with the path inside it (`""` or `/a/b`). */
  const parsePath = (value: string | null, what = "path", allowSub = false): { path: StorePath.StorePath; sub: string } => {
    if (value === null || value.length === 0) throw new HttpError(400, `missing parameter '${what}'`)
    if (value.length > 4096 || value.includes("\0")) throw new HttpError(400, `'${what}' is not a store path`)
    const full = value.startsWith("/") ? value : `${storeDir}/${value}`
    if (!full.startsWith(`${storeDir}/`)) throw new HttpError(400, `'${what}' is not in ${storeDir}`)
    const rest = full.slice(storeDir.length + 1)
    const slash = rest.indexOf("/")
    const base = slash === -1 ? rest : rest.slice(0, slash)
    const sub = slash === -1 ? "" : rest.slice(slash).replace(/\/+$/, "")
    const parsed = StorePath.parseBaseName(base)
    if (parsed._tag === "Failure") throw new HttpError(400, `'${what}' is not a store path: ${parsed.failure.message}`)
    if (sub !== "" && !allowSub) throw new HttpError(400, `'${what}' must be a store path, not a file inside one`)
    if (sub.split("/").slice(1).some((part) => part === "" || part === "." || part === "..")) throw new HttpError(400, `'${what}' has an invalid file name`)
    return { path: parsed.success, sub }
  }

  const info = (path: StorePath.StorePath) => store.queryPathInfo(path)

  // Closures, computed once and kept (the most recently used few).
  const closures = new Map<string, Effect.Effect<ClosureGraph, StoreError>>()
  const closureOf = (path: StorePath.StorePath): Effect.Effect<ClosureGraph, StoreError> => Effect.suspend(() => {
    const key = StorePath.baseName(path)
    const hit = closures.get(key)
    if (hit !== undefined) {
      closures.delete(key)
      closures.set(key, hit)
      return hit
    }
    return Effect.flatMap(Effect.cached(computeGraph(path)), (cached) => {
      closures.set(key, cached)
      while (closures.size > (options.cachedClosures ?? 8)) closures.delete(closures.keys().next().value!)
      return Effect.onError(cached, () => Effect.sync(() => { if (closures.get(key) === cached) closures.delete(key) }))
    })
  })
  const computeGraph = (root: StorePath.StorePath) => Effect.gen(function*() {
    const nodes = new Map<string, Node>()
    const seen = new Set([StorePath.baseName(root)])
    let frontier: Array<StorePath.StorePath> = [root]
    while (frontier.length > 0) {
      const infos = yield* Effect.forEach(frontier, info, { concurrency: 32 })
      frontier = []
      for (const i of infos) {
        const baseName = StorePath.baseName(i.path)
        const references = i.references.map(StorePath.baseName).filter((r) => r !== baseName)
        nodes.set(baseName, { baseName, narSize: i.narSize, references })
        for (const ref of i.references) {
          const key = StorePath.baseName(ref)
          if (!seen.has(key)) { seen.add(key); frontier.push(ref) }
        }
      }
    }
    return closureGraph(StorePath.baseName(root), nodes)
  })

  /** The closure endpoint's answer, made once per closure kept. */
  const closureJson = new WeakMap<ClosureGraph, string>()

  // Listings, kept for the few paths last browsed.
  const listings = new Map<string, ListingNode>()
  const listingOf = (path: StorePath.StorePath) => Effect.suspend(() => {
    const key = StorePath.baseName(path)
    const hit = listings.get(key)
    if (hit !== undefined) return Effect.succeed(hit)
    return Effect.tap(narListing(store.narFromPath(path)), (listing) => Effect.sync(() => {
      listings.set(key, listing)
      if (listings.size > 16) listings.delete(listings.keys().next().value!)
    }))
  })

  const infoJson = (i: PathInfo) => ({
    path: print(i.path),
    narHash: Hash.print(i.narHash, "sri"),
    narSize: i.narSize,
    references: i.references.map(print),
    deriver: i.deriver ? print(i.deriver) : null,
    signatures: i.signatures.map((sig) => {
      const key = Signature.verifyDetached(fingerprint(i, storeDir), sig, trusted)
      return { signature: sig, key: sig.slice(0, Math.max(0, sig.indexOf(":"))), trusted: key !== undefined }
    }),
    ca: i.ca ? ContentAddress.print(i.ca) : null,
    registrationTime: i.registrationTime ?? null,
    ultimate: i.ultimate ?? false
  })

  /** The log of a .drv, or of the deriver of an output. */
  const logOf = (path: StorePath.StorePath) => Effect.gen(function*() {
    if (Option.isNone(logs)) return Option.none()
    const drv = path.name.endsWith(".drv") ? path : (yield* info(path)).deriver
    if (drv === undefined) return Option.none()
    const log = yield* logs.value.readLog(print(drv))
    return Option.map(log, (stream) => ({ drv: print(drv), stream }))
  })

  /** The store's paths, listed again when the last list is more than a few seconds old (typing makes many searches). */
  let listed: { at: number; paths: ReadonlyArray<StorePath.StorePath> } | undefined
  const allPaths = (list: () => Effect.Effect<ReadonlyArray<StorePath.StorePath>, StoreError>) => Effect.suspend(() => {
    if (listed !== undefined && Date.now() - listed.at < 5000) return Effect.succeed(listed.paths)
    return Effect.tap(list(), (paths) => Effect.sync(() => { listed = { at: Date.now(), paths } }))
  })

  const searchPaths = (query: string) => Effect.gen(function*() {
    const found = new Map<string, StorePath.StorePath>()
    const add = (p: StorePath.StorePath) => { found.set(StorePath.baseName(p), p) }
    if (/^[0123456789abcdfghijklmnpqrsvwxyz]{32}$/.test(query)) {
      const byHash = yield* store.queryPathFromHashPart(query)
      if (Option.isSome(byHash)) add(byHash.value)
    }
    const lower = query.toLowerCase()
    const matches = (p: StorePath.StorePath) => p.name.toLowerCase().includes(lower) || p.hashPart.startsWith(lower)
    if (store.queryAllValidPaths) {
      for (const p of yield* allPaths(store.queryAllValidPaths)) if (matches(p)) add(p)
    }
    // Stores that cannot list their paths: the roots and the closures looked at so far.
    for (const root of roots) if (matches(root)) add(root)
    for (const cached of closures.values()) {
      const graph = yield* Effect.orElseSucceed(cached, () => undefined)
      for (const node of graph?.nodes ?? []) {
        const parsed = StorePath.parseBaseName(node.baseName)
        if (parsed._tag === "Success" && matches(parsed.success)) add(parsed.success)
      }
    }
    const all = [...found.values()].sort((a, b) => a.name.localeCompare(b.name) || (a.hashPart < b.hashPart ? -1 : 1))
    return { query, results: all.slice(0, maxSearchResults).map(print), total: all.length }
  })

  const roots = (options.roots ?? []).flatMap((r) => {
    const parsed = StorePath.parse(r, storeDir)
    return parsed._tag === "Success" ? [parsed.success] : []
  })

  // The roots' closures are computed now, in the background, so their pages open quickly.
  yield* Effect.forkDetach(Effect.forEach(roots, (r) => Effect.ignore(closureOf(r)), { discard: true }))

  const api = (name: string, params: URLSearchParams): Effect.Effect<PlainResponse, StoreError | HttpError | unknown> => {
    switch (name) {
      case "info": return Effect.gen(function*() {
        const rootInfos = yield* Effect.forEach(roots, (r) => Effect.option(info(r)), { concurrency: 16 })
        return json({
          store: store.uri,
          storeDir,
          roots: rootInfos.flatMap((i) => Option.isSome(i) ? [{ path: print(i.value.path), narSize: i.value.narSize }] : []),
          capabilities: { logs: Option.isSome(logs), listPaths: store.queryAllValidPaths !== undefined },
          trustedKeys: trusted.map((k) => k.name)
        })
      })
      case "search": {
        const q = params.get("q") ?? ""
        if (!searchRe.test(q)) return Effect.fail(new HttpError(400, "search for a part of a store path name (letters, digits and + - . _ ? =)"))
        return Effect.map(searchPaths(q), json)
      }
      case "path": return Effect.gen(function*() {
        const { path } = parsePath(params.get("path"))
        const i = yield* info(path)
        const referrers = yield* Effect.option(store.queryReferrers(path))
        const log = yield* Effect.option(logOf(path))
        return json({
          ...infoJson(i),
          referrers: Option.isSome(referrers) ? referrers.value.map(print) : null,
          log: Option.isSome(log) && Option.isSome(log.value) ? log.value.value.drv : null
        })
      })
      case "closure": return Effect.gen(function*() {
        const { path } = parsePath(params.get("path"))
        const g = yield* closureOf(path)
        let body = closureJson.get(g)
        if (body === undefined) {
          body = JSON.stringify({
            root: print(path),
            storeDir,
            closureSize: g.closureSize,
            paths: g.nodes.map((n) => n.baseName),
            narSize: g.nodes.map((n) => n.narSize),
            refs: g.refs,
            idom: Array.from(g.idom),
            added: Array.from(g.added),
            parent: Array.from(g.parent),
            depth: Array.from(g.depth)
          })
          closureJson.set(g, body)
        }
        return { status: 200, headers: { "content-type": "application/json", "cache-control": "no-store" }, body }
      })
      case "why": return Effect.gen(function*() {
        const from = parsePath(params.get("from"), "from").path
        const to = parsePath(params.get("to"), "to").path
        const g = yield* closureOf(from)
        const found = whyDepends(g, g.index.get(StorePath.baseName(to)) ?? -1)
        const entry = (i: number) => ({ path: `${storeDir}/${g.nodes[i]!.baseName}`, narSize: g.nodes[i]!.narSize, added: g.added[i]! })
        if (found === undefined) return json({ from: print(from), to: print(to), depends: false })
        return json({
          from: print(from),
          to: print(to),
          depends: true,
          chain: found.chain.map(entry),
          leadingTo: found.leadingTo,
          directReferrers: found.directReferrers.map(entry)
        })
      })
      case "hits": return Effect.gen(function*() {
        const { path } = parsePath(params.get("path"))
        const ref = parsePath(params.get("ref"), "ref").path
        const hits = yield* referenceHits(decodeNar(store.narFromPath(path)), ref.hashPart)
        return json({ path: print(path), ref: print(ref), ...hits })
      })
      case "ls": return Effect.gen(function*() {
        const { path, sub } = parsePath(params.get("path"), "path", true)
        const node = nodeAt(yield* listingOf(path), sub)
        if (node === undefined) return yield* Effect.fail(new HttpError(404, `no file ${sub} in ${print(path)}`))
        const self = describe(sub.split("/").pop() ?? "", node)
        return json({ path: print(path) + sub, node: self, ...(node.type === "directory" ? { entries: entriesOf(node) } : {}) })
      })
      case "file": return Effect.gen(function*() {
        const { path, sub } = parsePath(params.get("path"), "path", true)
        const node = nodeAt(yield* listingOf(path), sub)
        if (node === undefined) return yield* Effect.fail(new HttpError(404, `no file ${sub} in ${print(path)}`))
        if (node.type !== "regular") return json({ path: print(path) + sub, node: describe("", node) })
        const bytes = yield* sliceBytes(store.narFromPath(path), node.narOffset, Math.min(node.size, maxFileBytes))
        const text = isText(bytes)
        return json({
          path: print(path) + sub,
          size: node.size,
          executable: node.executable,
          truncated: node.size > bytes.length,
          ...(text ? { text: new TextDecoder().decode(bytes) } : { binary: true, head: Buffer.from(bytes.subarray(0, 256)).toString("hex") })
        })
      })
      case "log": return Effect.gen(function*() {
        const { path } = parsePath(params.get("path"))
        const log = yield* logOf(path)
        if (Option.isNone(log)) return yield* Effect.fail(new HttpError(404, `no build log of ${print(path)} in ${store.uri}`))
        const chunks: Array<Uint8Array> = []
        let size = 0
        yield* log.value.stream.pipe(Stream.runForEach((chunk) => Effect.sync(() => {
          chunks.push(chunk)
          size += chunk.length
          // keep the last maxLogBytes: a failing build's end is what matters
          while (size - chunks[0]!.length >= maxLogBytes) size -= chunks.shift()!.length
        })))
        const all = Buffer.concat(chunks)
        const text = all.subarray(Math.max(0, all.length - maxLogBytes))
        return json({ path: print(path), drv: log.value.drv, truncated: all.length > text.length, text: new TextDecoder().decode(text) })
      })
      case "diff": return Effect.gen(function*() {
        const from = parsePath(params.get("from"), "from").path
        const to = parsePath(params.get("to"), "to").path
        const [a, b] = yield* Effect.all([closureOf(from), closureOf(to)], { concurrency: 2 })
        const d = diffClosures(a.nodes, b.nodes)
        const full = (e: { baseName: string; narSize: number }) => ({ path: `${storeDir}/${e.baseName}`, narSize: e.narSize })
        return json({
          from: print(from),
          to: print(to),
          fromSize: d.fromSize,
          toSize: d.toSize,
          unchanged: d.unchanged,
          added: d.added.map(full),
          removed: d.removed.map(full),
          changed: d.changed.map((c) => ({ from: full(c.from), to: full(c.to), delta: c.delta }))
        })
      })
      default: return Effect.fail(new HttpError(404, `no API '${name}'`))
    }
  }

  const errorResponse = (error: unknown): PlainResponse => {
    if (error instanceof HttpError) return json({ error: error.message }, error.status)
    const tag = (error as { _tag?: string })?._tag
    const message = (error as Error)?.message ?? String(error)
    if (tag === "PathNotValid") return json({ error: message }, 404)
    if (tag === "Unsupported") return json({ error: message }, 501)
    return json({ error: message }, 500)
  }

  return (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return Effect.succeed({ status: 405, headers: { allow: "GET, HEAD", "content-type": "text/plain" }, body: "405 method not allowed\n" })
    }
    const url = new URL(request.url, "http://ui.invalid")
    const pathname = url.pathname
    if (pathname === "/" || pathname === "/index.html") {
      const page = assets.get("index.html")
      return Effect.succeed(page === undefined
        ? { status: 503, headers: { "content-type": "text/plain" }, body: "the web view is not built: run `node scripts/bundle.ts`\n" }
        : { status: 200, headers: { "content-type": contentTypes[".html"]!, "cache-control": "no-cache" }, body: page })
    }
    if (pathname.startsWith("/assets/")) {
      const asset = assets.get(pathname.slice(1))
      return Effect.succeed(asset === undefined
        ? { status: 404, headers: { "content-type": "text/plain" }, body: "404 not found\n" }
        : { status: 200, headers: { "content-type": contentTypes[extname(pathname)]!, "cache-control": "no-cache" }, body: asset })
    }
    const apiName = /^\/api\/([a-z]+)$/.exec(pathname)?.[1]
    if (apiName === undefined) return Effect.succeed({ status: 404, headers: { "content-type": "text/plain" }, body: "404 not found\n" })
    return Effect.suspend(() => {
      try {
        return api(apiName, url.searchParams)
      } catch (error) {
        return Effect.fail(error)
      }
    }).pipe(
      Effect.catchCause((cause) => Effect.succeed(errorResponse(Cause.squash(cause)))),
      Effect.exit,
      Effect.map((exit) => Exit.isSuccess(exit) ? exit.value : errorResponse(new Error("internal error")))
    )
  }
})
