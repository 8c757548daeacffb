/**
 * The library bundle `b3 run` starts pipelines with (dist/lib/, or dist/npm/lib/ in the npm package):
 * the pipeline runner (src/cli/run-pipeline.ts) and every module a pipeline may import from b3 and
 * Effect — `b3`, `b3/derivation`, `b3/plugin`, `effect` and its sub-packages (`effect/cli`, …),
 * `@effect/platform-node` — as ES modules that share their code through chunks, so the runner and
 * the pipeline use one copy of each, loaded from a few files instead of ~600 modules (b3's
 * TypeScript sources and Effect's files: ~2 s on a loaded machine).
 *
 * A module of a package's index (`effect/Stream`, `effect/cli/Command`, `@effect/platform-node/
 * NodeRuntime`) is a small file re-exporting that namespace of the bundled index, so it is the very
 * object `import { Stream } from "effect"` gives. modules.json maps each specifier to its file; the
 * runner's resolve hook (src/io/shared-modules.ts) sends those imports there, from the pipeline and
 * from plugins alike. Other specifiers (Effect's internals) resolve as usual.
 */
import { build, type Plugin } from "esbuild"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { basename, dirname, join, relative } from "node:path"
import { pathToFileURL } from "node:url"

interface LibBundleOptions {
  readonly root: string
  readonly outdir: string
  readonly target: string
  readonly plugins: ReadonlyArray<Plugin>
  readonly banner: string
}

/** A package's entry points that are files (not patterns): `effect`, `effect/cli`, …, as specifier → file. */
const packageEntries = (root: string, name: string): Array<[string, string]> => {
  const require = createRequire(join(root, "package.json"))
  const dir = dirname(require.resolve(`${name}/package.json`))
  const exports = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).exports as Record<string, unknown>
  const entries: Array<[string, string]> = []
  for (const [key, value] of Object.entries(exports)) {
    if (key.includes("*") || key === "./package.json" || typeof value !== "string") continue
    entries.push([key === "." ? name : `${name}/${key.slice(2)}`, join(dir, value)])
  }
  return entries
}

/** The namespaces an index re-exports (`export * as Stream from "./Stream.js"`): name → the module's specifier. */
const namespacesOf = (specifier: string, file: string): Array<[string, string, string]> => {
  const text = readFileSync(file, "utf8")
  const found: Array<[string, string, string]> = []
  for (const m of text.matchAll(/^export \* as (\w+) from "\.\/([\w/-]+)\.js";?$/gm)) {
    found.push([m[1]!, `${specifier}/${m[2]}`, join(dirname(file), `${m[2]}.js`)])
  }
  return found
}

/**
 * The entry points of Effect bundled: the ones b3 itself uses and pipelines are likely to. Each is a
 * separate entry, and esbuild splits code by which entries reach it, so every one more makes more,
 * smaller chunks to load. A pipeline importing another (`effect/ai`) gets it from node_modules.
 */
const bundledEntries = ["effect", "effect/cli", "effect/http", "effect/process", "@effect/platform-node"]

const entryName = (specifier: string) => specifier.replace(/^@/, "").replaceAll("/", "-")

export const buildLib = async (options: LibBundleOptions): Promise<void> => {
  const { root, outdir } = options
  const sources: Record<string, string> = {
    "run-pipeline": join(root, "src/cli/run-pipeline.ts"),
    "b3": join(root, "src/index.ts"),
    "b3-derivation": join(root, "src/core/derivation/index.ts"),
    "b3-plugin": join(root, "src/plugin.ts")
  }
  const modules: Record<string, string> = { "b3": "b3.mjs", "b3/derivation": "b3-derivation.mjs", "b3/plugin": "b3-plugin.mjs" }
  const wrappers: Array<{ file: string; contents: string }> = []
  for (const pkg of ["effect", "@effect/platform-node"]) {
    for (const [specifier, file] of packageEntries(root, pkg)) {
      if (!bundledEntries.includes(specifier)) continue
      const entry = entryName(specifier)
      sources[entry] = file
      modules[specifier] = `${entry}.mjs`
      for (const [namespace, moduleSpecifier, moduleFile] of namespacesOf(specifier, file)) {
        if (modules[moduleSpecifier] !== undefined) continue
        // The names the module exports, read from the module itself (some are reserved words: `void`, `try`).
        const loaded = await import(pathToFileURL(moduleFile).href).catch(() => undefined)
        if (loaded === undefined) continue // needs a package that is not installed: resolved as usual
        const names = Object.keys(loaded).filter((n) => n !== "default")
        const path = `modules/${moduleSpecifier.replace(/^@/, "")}.mjs`
        const back = relative(dirname(join(outdir, path)), join(outdir, `${entry}.mjs`))
        wrappers.push({
          file: path,
          contents: `import { ${namespace} as ns } from ${JSON.stringify(back.startsWith(".") ? back : `./${back}`)}\n` +
            names.map((n, i) => `const n${i} = ns[${JSON.stringify(n)}]`).join("\n") +
            `\nexport { ${names.map((n, i) => `n${i} as ${n}`).join(", ")} }\n`
        })
        modules[moduleSpecifier] = path
      }
    }
  }
  const result = await build({
    entryPoints: sources,
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    target: options.target,
    outdir,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    minifyWhitespace: true,
    minifySyntax: true,
    write: false,
    logLevel: "warning",
    packages: "bundle",
    // the plugins' packages, when a pipeline uses such a store, load from node_modules as they are
    external: ["@b3/ipfs", "@b3/s3"],
    plugins: [...options.plugins],
    banner: { js: options.banner }
  })
  const place = (path: string, contents: Uint8Array | string) => {
    mkdirSync(dirname(path), { recursive: true })
    const tmp = `${path}.${process.pid}.tmp`
    writeFileSync(tmp, contents)
    renameSync(tmp, path)
  }
  // chunks (content-hashed names) first, then the entries, the wrappers and the map that point at them
  const chunkDir = join(outdir, "chunks")
  const chunks = result.outputFiles.filter((f) => dirname(f.path) === chunkDir)
  for (const chunk of chunks) if (!existsSync(chunk.path)) place(chunk.path, chunk.contents)
  for (const file of result.outputFiles) if (dirname(file.path) !== chunkDir) place(file.path, file.contents)
  for (const wrapper of wrappers) place(join(outdir, wrapper.file), wrapper.contents)
  place(join(outdir, "modules.json"), JSON.stringify(modules, null, 1) + "\n")
  // chunks of older builds are kept for an hour (a running pipeline may still load them)
  const current = new Set(chunks.map((c) => basename(c.path)))
  for (const name of existsSync(chunkDir) ? readdirSync(chunkDir) : []) {
    const path = join(chunkDir, name)
    if (!current.has(name) && Date.now() - statSync(path).mtimeMs > 3600_000) rmSync(path, { force: true })
  }
}
