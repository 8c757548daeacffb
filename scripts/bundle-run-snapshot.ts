/**
 * The CommonJS bundle the pipeline runner's startup snapshot is built from (dist/run-snapshot.cjs,
 * src/cli/run-snapshot-entry.ts; scripts/bundle.ts builds dist/run.blob from it). Unlike the CLI's
 * snapshot, whose modules that need the network or a database are evaluated only when a command asks
 * for them, this one evaluates everything a pipeline may import, HTTP server and client and local store
 * included; so what cannot be in a V8 snapshot is loaded on first use instead:
 *
 * - Node modules with native state (node:http's parser, node:sqlite, node:net, …): each import of one
 *   is a stand-in with the module's names, each a getter that loads it on first use (a function whose
 *   name starts in lower case, like `createServer`, is a function that loads it when called, since
 *   @effect/platform-node passes `http.createServer` around while its modules are evaluated);
 * - the packages left in node_modules (undici, ws): the same, the module found at run time from
 *   snapshotUrl (src/cli/snapshot-runtime.ts) as in the CLI's snapshot;
 * - @effect/platform-node's internal/http.js, which loads node:http and node:https with a require()
 *   of its own, imports them instead, so that they get stand-ins too.
 */
import { build, type BuildResult, type Plugin } from "esbuild"
import { createRequire } from "node:module"
import { join } from "node:path"

/** Node modules that cannot be loaded while the snapshot is built (native handles V8 cannot serialise). */
const lazyBuiltins = /^(node:)?(http|https|http2|net|tls|dgram|dns|dns\/promises|inspector|worker_threads|cluster|sqlite|perf_hooks|tty)$/

/** A stand-in for a module: its names (read here, at build time) as getters that load it on first use. */
const standIn = (load: string, module: Record<string, unknown>): string => {
  const names = Object.keys(module).filter((name) => name !== "default" && name !== "__esModule")
  const calls = names.filter((name) => typeof module[name] === "function" && /^[a-z]/.test(name))
  return `let loaded
const load = () => loaded ??= ${load}
const calls = new Set(${JSON.stringify(calls)})
module.exports = Object.defineProperties({}, Object.fromEntries(${JSON.stringify(names)}.map((name) => [name, calls.has(name)
  ? { value: function (...args) { return load()[name].apply(this, args) }, enumerable: true }
  : { get: () => load()[name], enumerable: true }])))
`
}

export const buildRunSnapshotBundle = (options: {
  readonly root: string
  readonly outdir: string
  /** src/cli/snapshot-runtime.ts */
  readonly snapshotRuntime: string
  readonly isRunTimePackage: (path: string) => boolean
}): Promise<BuildResult<{ write: false }>> => {
  const { root, snapshotRuntime } = options
  const require = createRequire(join(root, "package.json"))
  const loadLater: Plugin = {
    name: "load-later",
    setup(b) {
      b.onResolve({ filter: lazyBuiltins }, (args) =>
        args.namespace === "lazy-builtin" ? { path: args.path, external: true } : { path: args.path, namespace: "lazy-builtin" })
      b.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, (args) =>
        ({ contents: standIn(`require(${JSON.stringify(args.path)})`, require(args.path) as Record<string, unknown>), loader: "js" }))
      b.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (!options.isRunTimePackage(args.path) || args.pluginData === "resolving") return undefined
        const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: "resolving" })
        if (resolved.errors.length > 0) return { errors: resolved.errors }
        const fromRoot = resolved.path.slice(resolved.path.indexOf("/node_modules/") + 1)
        return { path: `${fromRoot} (at run time)`, namespace: "package-later", pluginData: { fromRoot, file: resolved.path } }
      })
      b.onLoad({ filter: /.*/, namespace: "package-later" }, (args) => {
        const { fromRoot, file } = args.pluginData as { fromRoot: string; file: string }
        const load = `require(${JSON.stringify(snapshotRuntime)}).requireAtRunTime(${JSON.stringify(fromRoot)})`
        return { contents: standIn(load, require(file) as Record<string, unknown>), loader: "js", resolveDir: root }
      })
      b.onLoad({ filter: /@effect[\\/]platform-node[\\/]dist[\\/]internal[\\/]http\.js$/ }, () =>
        ({ contents: `import * as http from "node:http"\nimport * as https from "node:https"\nexport { http, https }\n`, loader: "js" }))
    }
  }
  return build({
    entryPoints: { "run-snapshot": join(root, "src/cli/run-snapshot-entry.ts") },
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node24",
    outdir: options.outdir,
    outExtension: { ".js": ".cjs" },
    minifyWhitespace: true,
    minifySyntax: true,
    write: false,
    logLevel: "warning",
    packages: "bundle",
    // the plugins' packages, when a pipeline uses such a store, load from node_modules as they are
    external: ["@b3/ipfs", "@b3/s3"],
    plugins: [loadLater],
    inject: [snapshotRuntime],
    define: { "import.meta.url": "snapshotUrl" }
  })
}
