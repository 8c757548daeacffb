/**
 * What code in the CLI's snapshot bundle (dist/b3-snapshot.cjs, see snapshot-entry.ts) gets in place of
 * ES module features a CommonJS bundle lacks. scripts/bundle.ts injects this module into that bundle:
 *
 * - `import.meta.url` is compiled to `snapshotUrl`, the bundle's URL *where this run finds it* (set by
 *   snapshot-entry.ts when the process starts, so a moved checkout is not sent to the build's paths);
 * - static imports of the packages left in node_modules (the IPFS ones, undici, ws) are compiled to
 *   `requireAtRunTime(path)`, evaluated when the importing module is first loaded: the snapshot's own
 *   `require` loads only Node's built-in modules. `path` is the package file esbuild resolved, relative
 *   to the project root. Node loads an ES module there synchronously (require of ESM) into the same
 *   module map `import()` uses, so its classes are the ones Helia's own imports see.
 */
import { createRequire } from "node:module"

export let snapshotUrl = ""

export const setSnapshotUrl = (url: string): void => { snapshotUrl = url }

export const requireAtRunTime = (pathFromRoot: string): unknown => createRequire(snapshotUrl)(`../${pathFromRoot}`)
