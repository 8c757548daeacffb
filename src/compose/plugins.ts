/**
 * Plugins: npm packages (or modules) that add store types to b3. A plugin's default export is a
 * `B3Plugin`; the heavy backends are plugins so that b3 itself installs small:
 *
 *   @b3/ipfs   ipfs://        (Helia, libp2p)
 *   @b3/s3     s3://, and the blobs under chunked+s3://   (the AWS SDK)
 *
 * The built-in registry knows which package each of those schemes is in and loads it when such a
 * store is first opened (from beside b3, else from the working directory); without it, opening
 * fails with one line naming the package to install. Other plugins are added to a registry with
 * `withPlugins` (programs), or named in the configuration (`plugins` in b3.json, `B3_PLUGINS`) for
 * the CLI and `b3 run`.
 */
import { Effect, Layer, Schema } from "effect"
import { createRequire } from "node:module"
import { isAbsolute, join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { importModule } from "../io/import-module.ts"
import { shareLibraryBundle } from "../io/shared-modules.ts"
import type { BlobStoreOpener } from "../layers/binary-cache/blob-store.ts"
import { BadStoreUri } from "../services/store-errors.ts"
import type { Registry, StoreOpener } from "../services/registry.ts"

/** What a plugin module exports (as its default export, or as `plugin`). */
export interface B3Plugin {
  /** The package name (for messages). */
  readonly name: string
  /** Store URI schemes the plugin opens: `{ kv: (uri) => Layer<StoreRead | …> }`. */
  readonly schemes?: Readonly<Record<string, StoreOpener>>
  /** Blob storage it lends to stores built on blobs: `{ s3: … }` makes `chunked+s3://` work. */
  readonly blobStores?: Readonly<Record<string, BlobStoreOpener>>
  /**
   * Commands for the b3 CLI (effect/cli `Command`s), offered as `b3 NAME …`. The CLI loads a plugin
   * for its commands only when the command line asks for one of them.
   */
  readonly commands?: ReadonlyArray<unknown>
}

/** The plugins b3 knows by scheme (and command), loaded when first needed. */
export const knownPlugins: ReadonlyArray<{ readonly name: string; readonly schemes: ReadonlyArray<string>; readonly commands: ReadonlyArray<string> }> = [
  { name: "@b3/ipfs", schemes: ["ipfs"], commands: ["ipfs"] },
  { name: "@b3/s3", schemes: ["s3", "chunked+s3"], commands: [] }
]

/** A plugin could not be loaded: not installed (`missing`), or broken. */
export class PluginError extends Schema.TaggedError<PluginError>()("PluginError", {
  plugin: Schema.String,
  missing: Schema.Boolean,
  reason: Schema.String
}) {
  override get message() {
    if (!this.missing) return `plugin ${this.plugin} could not be loaded: ${this.reason}`
    return isPath(this.plugin) ? `plugin ${this.plugin}: no such module` : `plugin ${this.plugin} is not installed (${installHint(this.plugin)})`
  }
}

const isPlugin = (value: unknown): value is B3Plugin =>
  typeof value === "object" && value !== null && typeof (value as { name?: unknown }).name === "string"

/** Is this the error of `name` itself not being found (rather than something it imports)? */
const notFound = (error: unknown, name: string) => {
  const { code, message } = error as { code?: unknown; message?: unknown }
  return (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && typeof message === "string" &&
    (message.includes(`'${name}'`) || message.includes(`"${name}"`))
}

const isPath = (name: string) => name.startsWith(".") || isAbsolute(name)

/** `name` as a module specifier: a package name as it is, a file path as a file: URL. */
const specifierOf = (name: string, cwd: string) => isPath(name) ? pathToFileURL(resolve(cwd, name)).href : name

/**
 * The specifier of a package as installed in the project at `cwd` (for a b3 that is not beside it,
 * e.g. run by npx or installed globally), or undefined.
 */
const fromProject = (name: string, cwd: string): string | undefined => {
  try {
    return pathToFileURL(createRequire(join(cwd, "package.json")).resolve(name)).href
  } catch {
    return undefined
  }
}

const loaded = new Map<string, Promise<B3Plugin>>()

/** Loads a plugin (once a process): a package name, resolved beside b3 then from `cwd`, or a module path. */
export const loadPlugin = (name: string, cwd: string = process.cwd()): Promise<B3Plugin> => {
  const key = `${name}\0${cwd}`
  let plugin = loaded.get(key)
  if (!plugin) {
    plugin = (async () => {
      // from the CLI's bundle: the plugin's `b3/plugin` and `effect` are the library bundle's (one
      // bundled copy), not b3's separate modules (sources or lib/) loaded a second time
      shareLibraryBundle(import.meta.url)
      const specifier = specifierOf(name, cwd)
      let module: { default?: unknown; plugin?: unknown }
      try {
        module = await importModule(specifier)
      } catch (error) {
        const local = specifier === name && notFound(error, name) ? fromProject(name, cwd) : undefined
        if (local === undefined) {
          throw new PluginError({
            plugin: name,
            missing: notFound(error, name) || (specifier !== name && (error as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND"),
            reason: error instanceof Error ? error.message.split("\n")[0]! : String(error)
          })
        }
        module = await importModule(local)
      }
      const value = isPlugin(module.default) ? module.default : module.plugin
      if (!isPlugin(value)) throw new PluginError({ plugin: name, missing: false, reason: "its default export is not a b3 plugin ({ name, schemes?, blobStores?, commands? })" })
      return value
    })()
    loaded.set(key, plugin)
    plugin.catch(() => loaded.delete(key))
  }
  return plugin
}

/** What to say when a known plugin is not installed. */
export const installHint = (name: string) => `npm install ${name} (beside b3; -g for a global b3)`

/** Loads a plugin for the store `uri`, failing with a BadStoreUri that says what to install. */
export const pluginFor = (name: string, uri: string, what: string): Effect.Effect<B3Plugin, BadStoreUri> =>
  Effect.tryPromise({
    try: () => loadPlugin(name),
    catch: (error) => {
      const e = error as PluginError
      return new BadStoreUri({
        uri,
        reason: e.missing ? `${what} need the ${name} plugin, which is not installed: ${installHint(name)}` : `the ${name} plugin could not be loaded: ${e.reason}`
      })
    }
  })

/** A scheme that a plugin package opens: loaded when a store of it is first opened. */
export const pluginScheme = (name: string, scheme: string): StoreOpener => (uri) =>
  Layer.unwrap(Effect.flatMap(pluginFor(name, uri.raw, `${scheme}:// stores`), (plugin) => {
    const opener = plugin.schemes?.[scheme]
    return opener ? Effect.succeed(opener(uri)) : Effect.fail(new BadStoreUri({ uri: uri.raw, reason: `the ${name} plugin does not open ${scheme}:// stores` }))
  }))

/** The blobs a plugin package keeps for `scheme` (for `chunked+SCHEME://`), loaded on first use. */
export const pluginBlobStore = (name: string, scheme: string, use: (blobs: BlobStoreOpener) => StoreOpener): StoreOpener => (uri) =>
  Layer.unwrap(Effect.flatMap(pluginFor(name, uri.raw, `${uri.scheme}:// stores`), (plugin) => {
    const blobs = plugin.blobStores?.[scheme]
    return blobs ? Effect.succeed(use(blobs)(uri)) : Effect.fail(new BadStoreUri({ uri: uri.raw, reason: `the ${name} plugin keeps no ${scheme} blobs` }))
  }))

/** The registry with the plugins' schemes added (a later plugin's scheme replaces an earlier one's). */
export const withPlugins = (registry: Registry, plugins: ReadonlyArray<B3Plugin>): Registry => {
  const schemes = new Map(registry.schemes)
  for (const plugin of plugins) for (const [scheme, opener] of Object.entries(plugin.schemes ?? {})) schemes.set(scheme, opener)
  return { schemes, builder: registry.builder }
}

/** Loads the plugins named (package names or module paths). */
export const loadPlugins = (names: ReadonlyArray<string>, cwd: string = process.cwd()): Effect.Effect<ReadonlyArray<B3Plugin>, PluginError> =>
  Effect.forEach(names, (name) => Effect.tryPromise({
    try: () => loadPlugin(name, cwd),
    catch: (error) => error instanceof PluginError ? error : new PluginError({ plugin: name, missing: false, reason: String(error) })
  }))
