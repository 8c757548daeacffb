/**
 * Users' modules (pipelines, build modules) import `b3`, `b3/derivation`, `effect` and
 * `@effect/platform-node`. Where those do not resolve from the module's own directory (a module
 * outside any project that installs them), they resolve from this package, so a module works from
 * anywhere.
 */
import { existsSync, readFileSync } from "node:fs"
import { registerHooks } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const sharedModules = /^(b3|effect|@effect\/platform-node)(\/.*)?$/

/** This package's package.json (found upwards from this code, in src/ or a bundle in dist/), as a URL. */
export const packageJsonUrl = (from: string = import.meta.url): string | undefined => {
  for (let dir = dirname(fileURLToPath(from)); ; dir = dirname(dir)) {
    const candidate = join(dir, "package.json")
    try {
      if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, "utf8")) as { name?: string }).name === "b3") return pathToFileURL(candidate).href
    } catch { /* not ours */ }
    if (dirname(dir) === dir) return undefined
  }
}

let shared = false

/** Resolves the shared modules from this package when they do not resolve from where they are imported (once a process). */
export const shareModules = (packageUrl: string | undefined = packageJsonUrl()): void => {
  if (shared || packageUrl === undefined) return
  shared = true
  registerHooks({
    resolve: (specifier, context, nextResolve) => {
      try {
        return nextResolve(specifier, context)
      } catch (error) {
        if (!sharedModules.test(specifier) || context.parentURL === packageUrl) throw error
        return nextResolve(specifier, { ...context, parentURL: packageUrl })
      }
    }
  })
}

/**
 * In the library bundle b3 run starts pipelines from (scripts/bundle-lib.ts): `b3`, `b3/…`, `effect`,
 * `effect/…` and `@effect/platform-node…` resolve to the bundle's modules (`modules`, specifier → URL),
 * wherever they are imported from, so a pipeline and the plugins it loads share the runner's copies.
 * Other imports of those packages (internal modules) resolve as shareModules does.
 */
export const shareBundledModules = (modules: Readonly<Record<string, string>>, packageUrl: string | undefined = packageJsonUrl()): void => {
  if (shared) return
  shared = true
  registerHooks({
    resolve: (specifier, context, nextResolve) => {
      const bundled = sharedModules.test(specifier) ? modules[specifier] : undefined
      if (bundled !== undefined) return { url: bundled, format: "module", shortCircuit: true }
      try {
        return nextResolve(specifier, context)
      } catch (error) {
        if (packageUrl === undefined || !sharedModules.test(specifier) || context.parentURL === packageUrl) throw error
        return nextResolve(specifier, { ...context, parentURL: packageUrl })
      }
    }
  })
}

/**
 * In the pipeline runner's startup snapshot (src/cli/run-snapshot-entry.ts), where b3 and Effect are
 * already in the heap: the shared modules resolve to the library bundle's URLs, as with
 * shareBundledModules, but what is loaded there is a module made on the spot that exports the
 * properties of the snapshot's own namespace object (`namespaceOf(specifier)`), so a pipeline and the
 * plugins it loads use the very objects the runner's services are made of.
 */
export const shareSnapshotModules = (
  modules: Readonly<Record<string, string>>,
  namespaceOf: (specifier: string) => Readonly<Record<string, unknown>> | undefined,
  packageUrl: string | undefined = packageJsonUrl()
): void => {
  if (shared) return
  shared = true
  const specifierOf = new Map(Object.entries(modules).map(([specifier, url]) => [url, specifier]))
  const loaded: Record<string, Readonly<Record<string, unknown>>> = {}
  const key = Symbol.for("b3/snapshot-modules")
  ;(globalThis as unknown as Record<symbol, unknown>)[key] = loaded
  registerHooks({
    resolve: (specifier, context, nextResolve) => {
      const url = sharedModules.test(specifier) ? modules[specifier] : undefined
      if (url !== undefined) return { url, format: "module", shortCircuit: true }
      try {
        return nextResolve(specifier, context)
      } catch (error) {
        if (packageUrl === undefined || !sharedModules.test(specifier) || context.parentURL === packageUrl) throw error
        return nextResolve(specifier, { ...context, parentURL: packageUrl })
      }
    },
    load: (url, context, nextLoad) => {
      const specifier = specifierOf.get(url)
      const namespace = specifier === undefined ? undefined : namespaceOf(specifier)
      if (namespace === undefined) return nextLoad(url, context)
      loaded[url] = namespace
      const names = Object.keys(namespace).filter((name) => name !== "default")
      const source = `const m = globalThis[Symbol.for("b3/snapshot-modules")][${JSON.stringify(url)}]\n` +
        names.map((name, i) => `const n${i} = m[${JSON.stringify(name)}]\n`).join("") +
        `export { ${names.map((name, i) => `n${i} as ${JSON.stringify(name)}`).join(", ")} }\n` +
        ("default" in namespace ? "export default m.default\n" : "")
      return { url, format: "module", source, shortCircuit: true }
    }
  })
}

/**
 * The library bundle beside a CLI bundle (dist/lib/ beside dist/b3.mjs and dist/chunks/, dist/npm/lib/
 * in the package), if `from` is code of one: its modules shared as shareBundledModules does. Nothing
 * when run from the sources.
 */
export const shareLibraryBundle = (from: string): void => {
  if (shared || !from.startsWith("file:")) return
  for (let dir = dirname(fileURLToPath(from)), up = 0; up < 2; dir = dirname(dir), up++) {
    const modulesJson = join(dir, "lib", "modules.json")
    if (!existsSync(modulesJson) || !existsSync(join(dir, "b3.mjs"))) continue
    const relative = JSON.parse(readFileSync(modulesJson, "utf8")) as Record<string, string>
    const base = pathToFileURL(modulesJson)
    return shareBundledModules(Object.fromEntries(Object.entries(relative).map(([specifier, file]) => [specifier, new URL(file, base).href])))
  }
}
