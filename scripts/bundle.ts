/**
 * Bundles the CLI into dist/b3.mjs with esbuild. Code only some commands need (the HTTP client and
 * server, S3, ...) is split into content-hashed chunks under dist/chunks, loaded on first use, so
 * start-up parses only what every command needs.
 *
 * Then the CLI's V8 startup snapshot, which bin/b3 starts from when it is there: a CommonJS bundle of
 * src/cli/snapshot-entry.ts (dist/b3-snapshot.cjs, no chunks: a snapshot is one script) and the blob
 * `node --build-snapshot` makes of it (dist/b3.blob). If the blob cannot be built, b3 runs dist/b3.mjs.
 *
 * Concurrent b3 invocations never see a half-written bundle or blob: each chunk is written under a
 * temporary name and renamed (its name is its content hash, so an old process that still has
 * chunks to load finds them), the entry file is renamed into place after them, and the blob last
 * (bin/b3 uses a blob only if it is newer than dist/b3.mjs).
 *
 * And the web view's page (src/servers/ui/web) for browsers: dist/ui/index.html, assets/app.js
 * (the drawing views in chunks loaded on first use) and assets/app.css, built into a fresh
 * directory and swapped in.
 */
import { build, type Plugin } from "esbuild"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { basename, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { buildLib } from "./bundle-lib.ts"
import { buildRunSnapshotBundle } from "./bundle-run-snapshot.ts"

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
 * `--package`: the bundle the npm package ships (scripts/pack-build.ts), in dist/npm: for any Node
 * from 22 on, without the startup snapshot (a blob works only with the Node binary that made it),
 * built afresh (no chunks of older bundles).
 */
const forPackage = process.argv.includes("--package")

if (forPackage) rmSync(join(root, "dist", "npm"), { recursive: true, force: true })

const esmBuild = build({
  entryPoints: { b3: join(root, "src/cli/main.ts") },
  bundle: true,
  splitting: true,
  platform: "node",
  format: "esm",
  target: forPackage ? "node22" : "node24",
  outdir: forPackage ? join(outdir, "npm") : outdir,
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  // Whitespace and syntax only: names stay, so stack traces and class names read as in the sources.
  minifyWhitespace: true,
  minifySyntax: true,
  write: false,
  logLevel: "warning",
  packages: "bundle",
  plugins: [builtinsByRequire, undiciNamedExports],
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __b3CreateRequire } from 'node:module'; const require = __b3CreateRequire(import.meta.url);" }
})

/** src/cli/snapshot-runtime.ts: what the snapshot bundle has in place of import.meta.url and of imports from node_modules. */
const snapshotRuntime = join(root, "src/cli/snapshot-runtime.ts")
/**
 * Packages the snapshot bundle loads from node_modules at run time: undici and ws (half the bundle's
 * code, needed only by the HTTP client and server), which need not be in every run's heap.
 */
const runTimePackages = ["undici", "ws"]
/** As esbuild's `external` matches: the package, its subpaths, and `scope/*` for a whole scope. */
const isRunTimePackage = (path: string) => runTimePackages.some((name) =>
  name.endsWith("/*") ? path.startsWith(name.slice(0, -1)) : path === name || path.startsWith(`${name}/`))

/**
 * In the snapshot bundle, a static import of one of those packages (@effect/platform-node's HTTP
 * modules import undici and ws) is a require() of the file esbuild resolves it to, done by
 * snapshot-runtime.ts's requireAtRunTime when the module that imports it is first loaded. The path is
 * kept from `node_modules/` on, so it holds wherever node_modules really is (a symlink in a worktree).
 */
const packagesAtRunTime: Plugin = {
  name: "packages-at-run-time",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (!isRunTimePackage(args.path) || args.pluginData === "resolving") return undefined
      const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: "resolving" })
      if (resolved.errors.length > 0) return { errors: resolved.errors }
      const fromRoot = resolved.path.slice(resolved.path.indexOf("/node_modules/") + 1)
      // Not the path itself as the name: a name ending in .mjs would make esbuild take this CommonJS stub for an ES module.
      return { path: `${fromRoot} (at run time)`, namespace: "packages-at-run-time", pluginData: fromRoot }
    })
    b.onLoad({ filter: /.*/, namespace: "packages-at-run-time" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(snapshotRuntime)}).requireAtRunTime(${JSON.stringify(args.pluginData)})`,
      loader: "js",
      resolveDir: root
    }))
  }
}

const snapshotBuild = forPackage ? undefined : build({
  entryPoints: { "b3-snapshot": join(root, "src/cli/snapshot-entry.ts") },
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node24",
  outdir,
  outExtension: { ".js": ".cjs" },
  minifyWhitespace: true,
  minifySyntax: true,
  write: false,
  logLevel: "warning",
  packages: "bundle",
  plugins: [packagesAtRunTime],
  inject: [snapshotRuntime],
  define: { "import.meta.url": "snapshotUrl" }
})

/** The pipeline runner's snapshot bundle (scripts/bundle-run-snapshot.ts), for `b3 run` in a checkout. */
const runSnapshotBuild = forPackage ? undefined : buildRunSnapshotBundle({ root, outdir, snapshotRuntime, isRunTimePackage })

const webSource = join(root, "src/servers/ui/web")
const webBuild = build({
  entryPoints: { app: join(webSource, "main.ts"), "app-style": join(webSource, "style.css") },
  bundle: true,
  splitting: true,
  platform: "browser",
  format: "esm",
  target: "chrome110",
  outdir: join(outdir, "ui", "assets"),
  entryNames: "[name]",
  chunkNames: "chunks/[name]-[hash]",
  minify: true,
  write: false,
  logLevel: "warning"
})

const banner = "import { createRequire as __b3CreateRequire } from 'node:module'; const require = __b3CreateRequire(import.meta.url);"
/** The library bundle b3 run starts pipelines from (scripts/bundle-lib.ts). */
const libBuild = buildLib({
  root,
  outdir: join(forPackage ? join(outdir, "npm") : outdir, "lib"),
  target: forPackage ? "node22" : "node24",
  plugins: [builtinsByRequire as unknown as Plugin, undiciNamedExports as unknown as Plugin],
  banner
})

const [result, snapshotResult, webResult, , runSnapshotResult] = await Promise.all([esmBuild, snapshotBuild, webBuild, libBuild, runSnapshotBuild])

// The web view (also shipped in the package: dist/ui/): written to a fresh directory that replaces dist/ui.
const uiDir = join(outdir, "ui")
const uiTmp = `${uiDir}.${process.pid}.tmp`
rmSync(uiTmp, { recursive: true, force: true })
for (const file of webResult.outputFiles) {
  const name = file.path.slice(uiDir.length + 1).replace(/app-style\.css$/, "app.css")
  mkdirSync(dirname(join(uiTmp, name)), { recursive: true })
  writeFileSync(join(uiTmp, name), file.contents)
}
writeFileSync(join(uiTmp, "index.html"), readFileSync(join(webSource, "index.html")))
rmSync(uiDir, { recursive: true, force: true })
renameSync(uiTmp, uiDir)

const place = (path: string, contents: Uint8Array) => {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, contents)
  renameSync(tmp, path)
}

if (forPackage || snapshotResult === undefined || runSnapshotResult === undefined) {
  for (const file of result.outputFiles) place(file.path, file.contents)
  process.exit(0)
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

/**
 * A startup snapshot, from the bundle placed beside the blob (the entry finds it there at run time). It
 * is built by the project's Node, the one bin/b3 runs it with (a blob works only with the Node that
 * made it), in an empty environment and at /, so nothing of this build's environment can be mistaken
 * for a run's. The CLI's (dist/b3.blob, src/cli/snapshot-entry.ts) and the pipeline runner's
 * (dist/run.blob, src/cli/run-snapshot-entry.ts); without one, b3 starts as it would without snapshots.
 */
const node = join(root, "node_modules", ".bin", "node")
const buildBlob = (name: string, contents: Uint8Array, what: string, without: string) => {
  const snapshotBundle = join(outdir, `${name}.cjs`)
  const blob = join(outdir, name === "b3-snapshot" ? "b3.blob" : "run.blob")
  place(snapshotBundle, contents)
  const tmpBlob = `${blob}.${process.pid}.tmp`
  const built = spawnSync(node, ["--snapshot-blob", tmpBlob, "--build-snapshot", snapshotBundle], { cwd: "/", env: {}, encoding: "utf8" })
  const log = join(outdir, `${name}.log`)
  if (built.status === 0 && existsSync(tmpBlob)) {
    renameSync(tmpBlob, blob)
    rmSync(log, { force: true })
  } else {
    rmSync(tmpBlob, { force: true })
    rmSync(blob, { force: true })
    writeFileSync(log, built.error ? String(built.error) : built.stderr)
    // an exception thrown while the modules were evaluated, or V8's reason for refusing the heap
    const reason = built.error?.message ?? built.stderr.split("\n").find((line) => /^\w*Error\b|^# .*failed|not serialized|Unknown external reference/.test(line))?.slice(0, 200)
    process.stderr.write(`b3: ${what} could not be built (${reason ?? `exit code ${built.status}`}; see ${log}); ${without}\n`)
  }
}
buildBlob("b3-snapshot", snapshotResult.outputFiles[0]!.contents, "the startup snapshot", "b3 starts without it")
buildBlob("run-snapshot", runSnapshotResult.outputFiles[0]!.contents, "the pipeline runner's startup snapshot", "b3 run starts without it")
