/**
 * What `npm pack` / `npm publish` ship, built on `prepack`:
 *
 *   node scripts/pack-build.ts                      b3 itself: lib/ (JavaScript and .d.ts compiled from
 *                                                   src/ by tsc, tsconfig.build.json) and the CLI bundle
 *                                                   dist/npm/ (scripts/bundle.ts --package)
 *   node ../../scripts/pack-build.ts --plugin .     a plugin in packages/NAME: lib/ from its src/
 *                                                   (against b3's lib/ typings, built first if missing)
 *     … --bundle                                    the plugin's dependencies bundled into lib/index.js
 *                                                   (the IPFS plugin: only the parts of Helia and
 *                                                   libp2p it loads, see below), typings from tsc
 */
import { build, type Plugin } from "esbuild"
import { spawnSync } from "node:child_process"
import { existsSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const args = process.argv.slice(2)
const pluginDir = args.includes("--plugin") ? resolve(args[args.indexOf("--plugin") + 1] ?? ".") : undefined
const bundled = args.includes("--bundle")

const run = (command: string, commandArgs: ReadonlyArray<string>, cwd: string) => {
  const result = spawnSync(command, commandArgs, { cwd, stdio: "inherit" })
  if (result.status !== 0) {
    process.stderr.write(`pack-build: ${command} ${commandArgs.join(" ")} failed (in ${cwd})\n`)
    process.exit(result.status ?? 1)
  }
}

const node = process.execPath
const tsc = join(root, "node_modules", "typescript", "bin", "tsc")

const buildCore = () => {
  rmSync(join(root, "lib"), { recursive: true, force: true })
  run(node, [tsc, "-p", "tsconfig.build.json"], root)
  run(node, [join(root, "scripts", "bundle.ts"), "--package"], root)
}

/**
 * The IPFS plugin's bundle loads Helia's node class from Helia's own module (helia-class.ts finds it
 * on disk at run time, which a bundle cannot): a static import of that file, which esbuild can follow
 * past the `helia` package's exports. What `helia`'s entry point loads (its default libp2p set-up:
 * WebRTC and with it react-native, DHT, relays, delegated routing) is never imported, so it is not
 * in the bundle, and the plugin depends on none of those packages.
 */
const heliaClass: Plugin = {
  name: "helia-class",
  setup(b) {
    b.onLoad({ filter: /[\\/]helia-class\.ts$/ }, (loaded) => {
      const entry = createRequire(loaded.path).resolve("helia")
      return { contents: `export { Helia } from ${JSON.stringify(join(dirname(entry), "helia.js"))}\nexport const loadHeliaClass = async () => (await import(${JSON.stringify(join(dirname(entry), "helia.js"))})).Helia\n`, loader: "ts", resolveDir: dirname(loaded.path) }
    })
  }
}

const buildPlugin = async (dir: string) => {
  if (!existsSync(join(root, "lib", "plugin.d.ts"))) run(node, [tsc, "-p", "tsconfig.build.json"], root)
  rmSync(join(dir, "lib"), { recursive: true, force: true })
  run(node, [tsc, "-p", "tsconfig.build.json", ...(bundled ? ["--emitDeclarationOnly"] : [])], dir)
  if (!bundled) return
  await build({
    entryPoints: [join(dir, "src", "index.ts")],
    outfile: join(dir, "lib", "index.js"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    logLevel: "warning",
    // b3 and Effect are the host's (peer dependencies): one copy of their classes and services.
    external: ["b3", "b3/*", "effect", "effect/*", "@effect/*"],
    conditions: ["node", "import"],
    plugins: [heliaClass],
    // CommonJS dependencies inside an ES module bundle still call require().
    banner: { js: "import { createRequire as __b3CreateRequire } from 'node:module'; const require = __b3CreateRequire(import.meta.url);" },
    legalComments: "eof"
  })
}

if (pluginDir === undefined) buildCore()
else await buildPlugin(pluginDir)
