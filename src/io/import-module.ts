/**
 * `import()` of modules that are not bundled with the CLI: the ESM-only IPFS packages and the AWS SDK
 * left in node_modules, and users' build modules. Every such import goes through `importModule` because
 * the CLI starts from a V8 startup snapshot (src/cli/snapshot-entry.ts), and code compiled into a
 * snapshot has no module loader behind its `import()` (it fails with "A dynamic import callback was not
 * specified"): the snapshot's main function swaps in an importer compiled at run time.
 *
 * Bare specifiers resolve as from this file (the project's node_modules, from src/ or dist/ alike);
 * files are given as file: URLs.
 */
let importer = (specifier: string): Promise<unknown> => import(specifier)

export const importModule = <M>(specifier: string): Promise<M> => importer(specifier) as Promise<M>

/** Replaces the importer (snapshot-entry.ts, at run time). */
export const setImporter = (f: (specifier: string) => Promise<unknown>): void => { importer = f }
