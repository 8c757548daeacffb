/**
 * Bundles the CLI into dist/b3.mjs with esbuild. Code only some commands need (the HTTP client and
 * server, S3, ...) is split into content-hashed chunks under dist/chunks, loaded on first use, so
 * start-up parses only what every command needs.
 *
 * Concurrent b3 invocations never see a half-written bundle: each chunk is written under a
 * temporary name and renamed (its name is its content hash, so an old process that still has
 * chunks to load finds them), and the entry file is renamed into place last.
 */
import { build } from "esbuild"
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { basename, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const outdir = join(root, "dist")
/**
 * Node's built-in modules are loaded with require() rather than imported: importing one as an ES module
 * builds a facade that reads every export, which for node:http alone loads Node's whole fetch stack.
 */
const builtinsByRequire = {
  name: "builtins-by-require",
  setup(b: { onResolve: Function; onLoad: Function }) {
    b.onResolve({ filter: /^node:/ }, (args: { path: string; namespace: string }) =>
      args.namespace === "builtin" ? { path: args.path, external: true } : { path: args.path, namespace: "builtin" })
    b.onLoad({ filter: /.*/, namespace: "builtin" }, (args: { path: string }) =>
      ({ contents: `module.exports = require(${JSON.stringify(args.path)})`, loader: "js" }))
  }
}

/**
 * `@effect/platform-node`'s Undici module is `export * from "undici"`, a CommonJS package: in a split
 * chunk esbuild cannot list its names, so they are spelled out here from the package itself.
 */
const undiciNamedExports = {
  name: "undici-named-exports",
  setup(b: { onLoad: Function }) {
    b.onLoad({ filter: /@effect[\\/]platform-node[\\/]dist[\\/]Undici\.js$/ }, () => {
      const names = Object.keys(createRequire(import.meta.url)("undici")).filter((name) => /^[A-Za-z_$][\w$]*$/.test(name))
      return { contents: `import undici from "undici"\nexport default undici\nexport const { ${names.join(", ")} } = undici\n`, loader: "js", resolveDir: root }
    })
  }
}

/**
 * The IPFS packages (Helia, libp2p, multiformats, UnixFS) stay in node_modules, loaded when an
 * ipfs:// store is opened: src/layers/ipfs loads Helia's node class from its own file, which a
 * bundled copy of multiformats or libp2p beside it would not share classes and errors with.
 */
const ipfsPackages = ["helia", "@helia/*", "libp2p", "@libp2p/*", "@chainsafe/*", "multiformats", "multiformats/*",
  "@multiformats/*", "@ipld/*", "ipfs-unixfs", "blockstore-fs", "datastore-fs"]

const result = await build({
  entryPoints: { b3: join(root, "src/cli/main.ts") },
  bundle: true,
  splitting: true,
  platform: "node",
  format: "esm",
  target: "node24",
  outdir,
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  // Whitespace and syntax only: names stay, so stack traces and class names read as in the sources.
  minifyWhitespace: true,
  minifySyntax: true,
  write: false,
  logLevel: "warning",
  packages: "bundle",
  external: ipfsPackages,
  plugins: [builtinsByRequire, undiciNamedExports],
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __b3CreateRequire } from 'node:module'; const require = __b3CreateRequire(import.meta.url);" }
})

const place = (path: string, contents: Uint8Array) => {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, contents)
  renameSync(tmp, path)
}
const entry = join(outdir, "b3.mjs")
const chunks = result.outputFiles.filter((file) => file.path !== entry)
for (const chunk of chunks) if (!existsSync(chunk.path)) place(chunk.path, chunk.contents)
place(entry, result.outputFiles.find((file) => file.path === entry)!.contents)

// Chunks of older bundles are kept for an hour (a process started before this build may still load them).
const current = new Set(chunks.map((chunk) => basename(chunk.path)))
const chunkDir = join(outdir, "chunks")
for (const name of existsSync(chunkDir) ? readdirSync(chunkDir) : []) {
  const path = join(chunkDir, name)
  if (!current.has(name) && Date.now() - statSync(path).mtimeMs > 3600_000) rmSync(path, { force: true })
}
