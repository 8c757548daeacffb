/**
 * bench/chunks corpora, built by the bench itself (nothing but the npm registry is reached):
 *
 *  (a) consecutive versions of a few large npm packages (`npm pack` into a cache directory kept
 *      between runs, unpacked, each version one store path);
 *  (b) a "mass rebuild": ~50 derivation outputs whose files embed their own and their dependencies'
 *      store paths (RPATHs in libraries and executables, wrapper scripts, .pc files), made twice with
 *      one changed root input, so every output path differs between the generations. Libraries and
 *      executables are real ELF files of this machine (/usr/lib/x86_64-linux-gnu) with the paths
 *      written into them.
 *
 * Every path is written as a NAR file with its PathInfo, so each store under test ingests the same
 * bytes as a stream.
 */
import { Effect, Result, Stream } from "effect"
import { spawnSync } from "node:child_process"
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"
import * as ContentAddress from "../../src/core/content-address.ts"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { narFromPath } from "../../src/nar/fs/index.ts"
import * as Tree from "../../src/nar/tree.ts"
import type { PathInfo } from "../../src/core/path-info.ts"

export interface CorpusPath {
  readonly info: PathInfo
  readonly narFile: string
}

const storeDir = StorePath.defaultStoreDir

export const cacheDir = join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "b3", "bench-chunks")

const run = (command: string, args: ReadonlyArray<string>, cwd?: string) => {
  const r = spawnSync(command, args, { encoding: "utf8", maxBuffer: 1 << 26, ...(cwd ? { cwd } : {}) })
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")}: ${r.stderr}`)
  return r.stdout.trim()
}

/** The last `count` stable versions of a package (within `major` if given). */
const lastVersions = (name: string, count: number, major?: number): Array<string> => {
  const versions = JSON.parse(run("npm", ["view", name, "versions", "--json"])) as Array<string>
  return versions.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && (major === undefined || v.startsWith(`${major}.`))).slice(-count)
}

/** `npm pack`ed tarball of name@version, from the cache (fetched once). */
const tarball = (name: string, version: string): string | undefined => {
  mkdirSync(cacheDir, { recursive: true })
  const file = join(cacheDir, `${name.replace(/^@/, "").replace("/", "-")}-${version}.tgz`)
  if (existsSync(file)) return file
  try {
    const packed = run("npm", ["pack", `${name}@${version}`, "--silent", "--pack-destination", cacheDir])
    const produced = join(cacheDir, packed.split("\n").pop()!.trim())
    if (produced !== file) renameSync(produced, file)
    return file
  } catch (e) {
    console.error(`(could not fetch ${name}@${version}: ${(e as Error).message.split("\n")[0]})`)
    return undefined
  }
}

/** Writes the NAR of a stream to a file and returns its hash and size. */
const writeNar = (file: string, nar: Stream.Stream<Uint8Array, unknown>) => Effect.gen(function*() {
  const fd = openSync(file, "w")
  const hasher = Hash.hasher("sha256")
  let size = 0
  yield* Stream.runForEach(nar, (chunk) => Effect.sync(() => { hasher.update(chunk); size += chunk.length; writeSync(fd, chunk) })).pipe(
    Effect.ensuring(Effect.sync(() => closeSync(fd))))
  return { narHash: hasher.digest(), narSize: size }
})

/** Corpus (a): each version of each package unpacked and made a content-addressed store path. */
export const npmCorpus = (work: string, packages: ReadonlyArray<{ readonly name: string; readonly count: number; readonly major?: number }>) =>
  Effect.gen(function*() {
    const out: Array<CorpusPath & { readonly label: string }> = []
    for (const p of packages) {
      const versions = lastVersions(p.name, p.count, p.major)
      for (const version of versions) {
        const tgz = tarball(p.name, version)
        if (!tgz) continue
        const label = `${p.name.replace(/^@/, "").replace("/", "-")}-${version}`
        const dir = join(work, "unpacked", label)
        mkdirSync(dir, { recursive: true })
        run("tar", ["xzf", tgz, "-C", dir])
        const root = join(dir, readdirSync(dir)[0]!)
        const narFile = join(work, "nars", `${label}.nar`)
        mkdirSync(join(work, "nars"), { recursive: true })
        const { narHash, narSize } = yield* writeNar(narFile, narFromPath(root))
        rmSync(dir, { recursive: true, force: true })
        const ca = ContentAddress.fixed("recursive", narHash)
        const path = ContentAddress.storePath(ca, label, { references: [], storeDir })
        out.push({ label, narFile, info: { path, narHash, narSize, references: [], signatures: [], ca } })
      }
    }
    return out
  })

/** Deterministic text of `n` bytes (documentation-like, no store paths). */
const prose = (seed: string, n: number) => {
  const words = ["the", "build", "output", "library", "function", "returns", "value", "option", "file", "path", "system", "linker", "shared", "object", "version", "symbol", "table", "section"]
  let x = Hash.hashBytes("sha256", seed).bytes.reduce((a, b) => (a * 31 + b) >>> 0, 1) || 1
  let s = ""
  while (s.length < n) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; s += words[(x >>> 0) % words.length] + ((x & 7) === 0 ? ".\n" : " ") }
  return s.slice(0, n)
}

/** Real ELF files of this machine, 40 KiB – 4 MiB, in a fixed order. */
const elfFiles = (() => {
  let cached: Array<string> | undefined
  return () => cached ??= readdirSync("/usr/lib/x86_64-linux-gnu")
    .map((f) => join("/usr/lib/x86_64-linux-gnu", f))
    .filter((f) => { try { const s = statSync(f); return s.isFile() && s.size >= 40_000 && s.size <= 4_000_000 && readFileSync(f).subarray(0, 4).toString("latin1") === "\x7fELF" } catch { return false } })
    .sort()
})()

/** `bytes` with `text` written in at `at` (the file keeps its size: the string replaces bytes there). */
const embed = (bytes: Uint8Array, at: number, text: string) => {
  const out = new Uint8Array(bytes)
  const t = Buffer.from(text + "\0")
  out.set(t.subarray(0, Math.max(0, Math.min(t.length, out.length - at))), at)
  return out
}

export interface RebuildGeneration {
  readonly paths: Array<CorpusPath & { readonly label: string }>
}

/**
 * Corpus (b): `count` derivations, each depending on the root and on 1-3 earlier ones; generation
 * `g` differs from the other only in the root's input (a version string), and so in every output
 * path and in every file that embeds one.
 */
export const rebuildCorpus = (work: string, g: number, count: number) => Effect.gen(function*() {
  const elves = elfFiles()
  const outs: Array<StorePath.StorePath> = []
  const paths: Array<CorpusPath & { readonly label: string }> = []
  mkdirSync(join(work, "nars"), { recursive: true })
  for (let i = 0; i < count; i++) {
    const name = i === 0 ? "stdenv" : `pkg${i}`
    const deps = i === 0 ? [] : [...new Set([0, ...[1, 2, 3].map((k) => (i * 7 + k * 13) % i).slice(0, 1 + (i % 3))])].sort((a, b) => a - b)
    const depPaths = deps.map((d) => outs[d]!)
    const fingerprint = `${name} root-input-v${g} ${depPaths.map((p) => p.hashPart).join(" ")}`
    const self = StorePath.makeOutput("out", Hash.hashBytes("sha256", fingerprint), name, storeDir)
    outs.push(self)
    const p = (x: StorePath.StorePath) => StorePath.print(x, storeDir)
    const rpath = [self, ...depPaths].map((x) => `${p(x)}/lib`).join(":")
    const lib = readFileSync(elves[(i * 3) % elves.length]!)
    const exe = readFileSync(elves[(i * 3 + 1) % elves.length]!)
    // RPATH near the start (.dynstr), the interpreter, and the path in a few .rodata strings
    const patch = (bytes: Uint8Array) => {
      let b = embed(bytes, Math.min(0x238, bytes.length >> 2), `${depPaths[0] ? p(depPaths[0]) : p(self)}/lib/ld-linux-x86-64.so.2`)
      b = embed(b, Math.min(0x400, bytes.length >> 2) + 200, rpath)
      for (const k of [1, 2, 3]) b = embed(b, Math.floor((bytes.length * k) / 4), `${p(self)}/share/${name}/data${k}`)
      return b
    }
    const version = i === 0 ? `2.${g}` : "1.0"
    const tree = Tree.directory({
      bin: Tree.directory({
        [name]: Tree.regular(patch(exe), true),
        [`${name}-wrapper`]: Tree.regular(`#!${depPaths[0] ? p(depPaths[0]) : p(self)}/bin/sh\nexport PATH=${[self, ...depPaths].map((x) => `${p(x)}/bin`).join(":")}\nexec ${p(self)}/bin/${name} "$@"\n`, true)
      }),
      lib: Tree.directory({
        [`lib${name}.so`]: Tree.regular(patch(lib)),
        pkgconfig: Tree.directory({ [`${name}.pc`]: Tree.regular(`prefix=${p(self)}\nlibdir=\${prefix}/lib\nName: ${name}\nVersion: ${version}\nRequires: ${deps.map((d) => (d === 0 ? "stdenv" : `pkg${d}`)).join(" ")}\nLibs: -L\${libdir} -l${name}\n`) })
      }),
      "nix-support": Tree.directory({ "propagated-build-inputs": Tree.regular(depPaths.map(p).join(" ") + "\n") }),
      share: Tree.directory({ doc: Tree.directory({ [name]: Tree.directory({ README: Tree.regular(`${name} ${version}\n${prose(name, 20_000 + (i % 5) * 10_000)}`) }) }) })
    })
    const nar = Result.getOrThrow(Tree.toNar(tree))
    const label = `g${g}-${name}`
    const narFile = join(work, "nars", `${label}.nar`)
    writeFileSync(narFile, nar)
    paths.push({ label, narFile, info: { path: self, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [self, ...depPaths].sort(StorePath.compare), signatures: [] } })
  }
  return { paths } satisfies RebuildGeneration
})
