/**
 * What a plugin is written with (`import … from "b3/plugin"`): everything `b3` exports, plus the
 * pieces a store backend is built from. A plugin package's default export is a `B3Plugin`:
 *
 * ```ts
 * import type { B3Plugin } from "b3/plugin"
 * export default { name: "b3-kv", schemes: { kv: openKvStore } } satisfies B3Plugin
 * ```
 *
 * See README.md (Plugins) and examples/kv-plugin/.
 */
export * from "./index.ts"

// the plugin mechanism
export { type B3Plugin, PluginError, loadPlugin, loadPlugins, withPlugins, knownPlugins } from "./compose/plugins.ts"
export { openerLayer } from "./services/registry.ts"

// store URIs and their options
export { checkParams, flagOption, readOnlyOption, storeDirOption, secondsOption, secretKeysOption, trustedKeysOption, redactStoreUri } from "./services/store-uri.ts"

// building blocks of stores
export type { BlobStore, BlobStoreOpener } from "./layers/binary-cache/blob-store.ts"
export { parseBinaryCacheOptions, binaryCacheParams } from "./layers/binary-cache/options.ts"
export { checkSignature } from "./services/copy.ts"
export { verifiedNar, withContentAddressCheck } from "./services/verified-nar.ts"
export { NarDecoder, decodeNarBytes } from "./nar/decode.ts"
export type { NarEvent, NarLimits } from "./nar/events.ts"
export { BadNar } from "./nar/errors.ts"
export { processAlive } from "./io/process-alive.ts"

// CLI commands of plugins
export { storeFlag } from "./cli/flags.ts"
export { outputMode, printJson, type OutputMode } from "./cli/output.ts"
