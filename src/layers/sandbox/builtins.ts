/**
 * Nix's built-in builders, run by b3 itself instead of a program in the sandbox (as Nix runs them
 * inside its sandbox process), each writing its one output into a work directory:
 *
 * - `builtin:fetchurl` (Nix 2.8's builtins/fetchurl.cc): downloads `url` (redirects followed, TLS
 *   not verified, no content decoding: the output's hash is checked afterwards anyway); with
 *   `unpack = "1"` the download is a NAR (xz-compressed if the URL ends in `.xz`) that becomes the
 *   output tree; with `executable = "1"` the file is made executable. For flat outputs the
 *   `hashed-mirrors` are asked first, as `<mirror>/<algo>/<base16 hash>`. (`urls` is not read, as
 *   in Nix 2.8: `<nix/fetchurl.nix>` sets it only for nix-prefetch-url.)
 * - `builtin:buildenv` (builtins/buildenv.cc): a profile of symlinks to the packages listed in
 *   `derivations` (`active priority count path…` groups), collisions decided by priority,
 *   `nix-support/propagated-user-env-packages` followed, `manifest` linked as `manifest.nix`.
 *   Store paths are read from the real store directory and links point into the logical one, as
 *   inside Nix's chroot.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs"
import { request as httpRequest, type IncomingMessage } from "node:http"
import { request as httpsRequest } from "node:https"
import { Effect, Result, Stream } from "effect"
import * as Hash from "../../core/hash.ts"
import { decompress } from "../../io/compression.ts"
import { restoreNar } from "../../nar/fs/index.ts"

/** Why a builtin builder failed, in Nix's words (it becomes the build's failure and log). */
export class BuiltinFailed extends Error {}

const tokenize = (s: string): Array<string> => s.split(/[ \t\n\r]+/).filter((t) => t !== "")

export interface BuiltinRun {
  readonly builder: string
  readonly env: Readonly<Record<string, string>>
  readonly storeDir: string
  readonly realStoreDir: string
  /** Where the output named by `env.out` goes on disk. */
  readonly outputPhysical: string
  readonly hashedMirrors: ReadonlyArray<string>
  readonly log: (line: string) => void
}

const attr = (env: Readonly<Record<string, string>>, name: string): string => {
  const v = env[name]
  if (v === undefined) throw new BuiltinFailed(`attribute '${name}' missing`)
  return v
}

// ---------------------------------------------------------------------------------------------
// builtin:fetchurl

/** GET `url`, following redirects; the response with a 2xx status, or a Nix-worded error. */
const get = (url: string, redirects = 0): Promise<IncomingMessage> => new Promise((resolve, reject) => {
  let parsed: URL
  try { parsed = new URL(url) } catch { return reject(new BuiltinFailed(`unable to download '${url}': URL using bad/illegal format or missing URL`)) }
  const send = parsed.protocol === "https:" ? httpsRequest : parsed.protocol === "http:" ? httpRequest : undefined
  if (send === undefined) return reject(new BuiltinFailed(`unable to download '${url}': Unsupported protocol`))
  const req = send(parsed, { method: "GET", rejectUnauthorized: false, headers: { "user-agent": "curl/7.86.0 Nix/2.8.0 (b3)", accept: "*/*" } }, (res) => {
    const status = res.statusCode ?? 0
    if (status >= 300 && status < 400 && res.headers.location !== undefined) {
      res.resume()
      if (redirects >= 10) return reject(new BuiltinFailed(`unable to download '${url}': Number of redirects hit maximum amount`))
      return resolve(get(new URL(res.headers.location, parsed).toString(), redirects + 1))
    }
    if (status < 200 || status >= 300) {
      res.resume()
      return reject(new BuiltinFailed(`unable to download '${url}': HTTP error ${status}${res.statusMessage ? ` ('${res.statusMessage}')` : ""}`))
    }
    resolve(res)
  })
  req.on("error", (e) => reject(new BuiltinFailed(`unable to download '${url}': ${e.message}`)))
  req.end()
})

const bodyStream = (res: IncomingMessage): Stream.Stream<Uint8Array, BuiltinFailed> =>
  Stream.fromAsyncIterable(res as AsyncIterable<Uint8Array>, (e) => new BuiltinFailed(`download failed: ${e instanceof Error ? e.message : String(e)}`))

const fetchOne = (run: BuiltinRun, url: string, mainUrl: string, unpack: boolean): Effect.Effect<void, BuiltinFailed> => Effect.gen(function*() {
  run.log(`downloading '${url}'...`)
  const res = yield* Effect.tryPromise({ try: () => get(url), catch: (e) => e instanceof BuiltinFailed ? e : new BuiltinFailed(String(e)) })
  const body = bodyStream(res)
  if (unpack) {
    const nar = mainUrl.endsWith(".xz") ? Stream.mapError(decompress(body, "xz"), (e) => e instanceof BuiltinFailed ? e : new BuiltinFailed(e.message)) : body
    yield* Effect.mapError(restoreNar(nar, run.outputPhysical), (e) => e instanceof BuiltinFailed ? e : new BuiltinFailed(e.message))
  } else {
    const chunks: Array<Uint8Array> = []
    yield* Stream.runForEach(body, (chunk) => Effect.sync(() => { chunks.push(chunk) }))
    yield* Effect.try({ try: () => writeFileSync(run.outputPhysical, Buffer.concat(chunks)), catch: (e) => new BuiltinFailed(String(e)) })
  }
  if (run.env["executable"] === "1") {
    yield* Effect.try({ try: () => chmodSync(run.outputPhysical, 0o755), catch: (e) => new BuiltinFailed(`making '${attr(run.env, "out")}' executable: ${String(e)}`) })
  }
})

const fetchurl = (run: BuiltinRun): Effect.Effect<void, BuiltinFailed> => Effect.gen(function*() {
  const env = run.env
  const mainUrl = yield* Effect.try({ try: () => { attr(env, "out"); return attr(env, "url") }, catch: (e) => e as BuiltinFailed })
  const unpack = env["unpack"] === "1"
  const flat = yield* Effect.try({ try: () => attr(env, "outputHashMode") === "flat", catch: (e) => e as BuiltinFailed })
  if (flat) {
    for (const mirror of run.hashedMirrors) {
      const algo = env["outputHashAlgo"] ?? ""
      const parsed = Hash.parse(attr(env, "outputHash"), Hash.isHashAlgorithm(algo) ? algo : undefined)
      if (Result.isFailure(parsed)) break
      const url = `${mirror.endsWith("/") ? mirror : `${mirror}/`}${parsed.success.algorithm}/${Hash.encode(parsed.success, "base16")}`
      const ok = yield* Effect.match(fetchOne(run, url, mainUrl, unpack), { onFailure: (e) => { run.log(e.message); return false }, onSuccess: () => true })
      if (ok) return
    }
  }
  yield* fetchOne(run, mainUrl, mainUrl, unpack)
})

// ---------------------------------------------------------------------------------------------
// builtin:buildenv

interface Package { readonly path: string; readonly active: boolean; readonly priority: number }

/** Where a logical path is on disk: store paths are under the real store directory; nothing else exists (as in Nix's chroot). */
const physical = (run: BuiltinRun, logical: string): string | undefined =>
  logical === run.storeDir || logical.startsWith(run.storeDir + "/") ? run.realStoreDir + logical.slice(run.storeDir.length) : undefined

/** `canonPath(path, true)`: the logical path with every symlink resolved (links read on disk), or undefined if it leads outside the store. */
const resolveLogical = (run: BuiltinRun, path: string): string | undefined => {
  let parts = path.split("/").filter((p) => p !== "" && p !== ".")
  const done: Array<string> = []
  let hops = 0
  while (parts.length > 0) {
    const part = parts.shift()!
    if (part === "..") { done.pop(); continue }
    const candidate = `/${[...done, part].join("/")}`
    const where = physical(run, candidate)
    if (where === undefined) { done.push(part); continue }
    let st
    try { st = lstatSync(where) } catch { return undefined }
    if (!st.isSymbolicLink()) { done.push(part); continue }
    if (++hops > 40) return undefined
    const target = readlinkSync(where)
    parts = [...target.split("/").filter((p) => p !== "" && p !== "."), ...parts]
    if (target.startsWith("/")) done.length = 0
  }
  return `/${done.join("/")}`
}

/** `stat` of a logical path (following links): "dir", "other", or undefined if it does not exist. */
const statLogical = (run: BuiltinRun, path: string): "dir" | "other" | undefined => {
  const resolved = resolveLogical(run, path)
  const where = resolved === undefined ? undefined : physical(run, resolved)
  if (where === undefined) return undefined
  try { return statSync(where).isDirectory() ? "dir" : "other" } catch { return undefined }
}

const buildenv = (run: BuiltinRun): Effect.Effect<void, BuiltinFailed> => Effect.try({
  try: () => {
    const env = run.env
    const out = attr(env, "out")
    const outPhysical = run.outputPhysical
    mkdirSync(outPhysical, { recursive: true })
    const pkgs: Array<Package> = []
    const tokens = tokenize(attr(env, "derivations"))
    while (tokens.length > 0) {
      const active = tokens.shift()!
      const priority = Number.parseInt(tokens.shift() ?? "", 10)
      const count = Number.parseInt(tokens.shift() ?? "", 10)
      if (!Number.isFinite(priority) || !Number.isFinite(count)) throw new BuiltinFailed("stoi")
      for (let n = 0; n < count; n++) pkgs.push({ path: tokens.shift() ?? "", active: active !== "false", priority })
    }
    // Destination paths are kept relative to the output; priorities by destination.
    const priorities = new Map<string, number>()
    const dst = (rel: string) => `${outPhysical}${rel}`
    const dstLogical = (rel: string) => `${out}${rel}`
    const lstatOrUndefined = (p: string) => { try { return lstatSync(p) } catch { return undefined } }

    const createLinks = (srcDir: string, rel: string, priority: number): void => {
      const srcWhere = physical(run, resolveLogical(run, srcDir) ?? srcDir)
      let entries: Array<string>
      try {
        if (srcWhere === undefined || !statSync(srcWhere).isDirectory()) {
          run.log(`warning: not including '${srcDir}' in the user environment because it's not a directory`)
          return
        }
        entries = readdirSync(srcWhere)
      } catch {
        run.log(`warning: not including '${srcDir}' in the user environment because it's not a directory`)
        return
      }
      for (const name of entries) {
        if (name.startsWith(".")) continue
        const srcFile = `${srcDir}/${name}`
        const dstRel = `${rel}/${name}`
        const kind = statLogical(run, srcFile)
        if (kind === undefined) { run.log(`warning: skipping dangling symlink '${dstLogical(dstRel)}'`); continue }
        if (["/propagated-build-inputs", "/nix-support", "/perllocal.pod", "/info/dir", "/log", "/manifest.nix", "/manifest.json"].some((s) => srcFile.endsWith(s))) continue
        const dstSt = lstatOrUndefined(dst(dstRel))
        if (kind === "dir") {
          if (dstSt?.isDirectory()) { createLinks(srcFile, dstRel, priority); continue }
          if (dstSt?.isSymbolicLink()) {
            const target = resolveLogical(run, readlinkSync(dst(dstRel))) ?? readlinkSync(dst(dstRel))
            if (statLogical(run, target) !== "dir") throw new BuiltinFailed(`collision between '${srcFile}' and non-directory '${target}'`)
            unlinkSync(dst(dstRel))
            mkdirSync(dst(dstRel), { mode: 0o755 })
            createLinks(target, dstRel, priorities.get(dstRel) ?? 0)
            createLinks(srcFile, dstRel, priority)
            continue
          }
        } else if (dstSt !== undefined) {
          if (dstSt.isSymbolicLink()) {
            const prev = priorities.get(dstRel) ?? 0
            if (prev === priority) {
              throw new BuiltinFailed(`packages '${srcFile}' and '${readlinkSync(dst(dstRel))}' have the same priority ${priority}; ` +
                "use 'nix-env --set-flag priority NUMBER INSTALLED_PKGNAME' to change the priority of one of the conflicting packages (0 being the highest priority)")
            }
            if (prev < priority) continue
            unlinkSync(dst(dstRel))
          } else if (dstSt.isDirectory()) {
            throw new BuiltinFailed(`collision between non-directory '${srcFile}' and directory '${dstLogical(dstRel)}'`)
          }
        }
        symlinkSync(srcFile, dst(dstRel))
        priorities.set(dstRel, priority)
      }
    }

    const done = new Set<string>()
    let postponed = new Set<string>()
    const addPkg = (pkgDir: string, priority: number) => {
      if (done.has(pkgDir)) return
      done.add(pkgDir)
      createLinks(pkgDir, "", priority)
      const file = physical(run, resolveLogical(run, `${pkgDir}/nix-support/propagated-user-env-packages`) ?? "")
      if (file === undefined) return
      let text: string
      try { text = readFileSync(file, "utf8") } catch { return }
      for (const p of text.split(/[ \n]+/).filter((t) => t !== "")) if (!done.has(p)) postponed.add(p)
    }
    pkgs.sort((a, b) => a.priority - b.priority || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    for (const pkg of pkgs) if (pkg.active) addPkg(pkg.path, pkg.priority)
    let counter = 1000
    while (postponed.size > 0) {
      const round = [...postponed].sort()
      postponed = new Set()
      for (const dir of round) addPkg(dir, counter++)
    }
    symlinkSync(attr(env, "manifest"), `${outPhysical}/manifest.nix`)
  },
  catch: (e) => e instanceof BuiltinFailed ? e : new BuiltinFailed(e instanceof Error ? e.message : String(e))
})

/** Runs a builtin builder; fails with Nix's message. */
export const runBuiltin = (run: BuiltinRun): Effect.Effect<void, BuiltinFailed> => {
  switch (run.builder) {
    case "builtin:fetchurl": return fetchurl(run)
    case "builtin:buildenv": return buildenv(run)
    default: return Effect.fail(new BuiltinFailed(`unsupported builtin builder '${run.builder.slice("builtin:".length)}'`))
  }
}
