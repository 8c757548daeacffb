/**
 * Bundles the CLI into dist/b3.mjs with esbuild (written under a temporary name and renamed, so
 * concurrent b3 invocations never run a half-written bundle).
 */
import { build } from "esbuild"
import { renameSync } from "node:fs"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const outfile = `${root}dist/b3.mjs`
const tmp = `${outfile}.${process.pid}.tmp`
await build({
  entryPoints: [`${root}src/cli/main.ts`],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node24",
  outfile: tmp,
  logLevel: "warning",
  packages: "bundle",
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __b3CreateRequire } from 'node:module'; const require = __b3CreateRequire(import.meta.url);" }
})
renameSync(tmp, outfile)
