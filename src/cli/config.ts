/**
 * b3's configuration: defaults, then a config file (`./b3.json`, else
 * `$XDG_CONFIG_HOME/b3/config.json` or `~/.config/b3/config.json`), then environment variables
 * (`B3_STORE`, `B3_SUBSTITUTERS`, `B3_TRUSTED_PUBLIC_KEYS`, `B3_PLUGINS`), then command-line flags.
 * Read once, when first needed. There is no default store: the machine's /nix/store is used only
 * when asked for (`--store local` or `/nix/store`). A malformed file fails every command that opens a
 * store (open-store.ts); `b3 config show` prints what is wrong with it.
 */
import { Effect } from "effect"
import { existsSync, readFileSync, statSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"
import { maxSmallFileBytes } from "../io/read-bounded.ts"

export interface B3Config {
  /** Default store URI for commands that take `--store`; "" when none is configured. */
  readonly store: string
  /** Substituter store URIs, space-separated in env/flags. */
  readonly substituters: ReadonlyArray<string>
  /** Trusted public keys `name:base64`. */
  readonly trustedPublicKeys: ReadonlyArray<string>
  /** Plugins to load (package names or module paths, relative to the working directory), space-separated in env. */
  readonly plugins: ReadonlyArray<string>
  /** Where each setting came from. */
  readonly sources: Readonly<Record<string, string>>
  /** The config file read, if any, and problems with it. */
  readonly file?: string
  readonly problems: ReadonlyArray<string>
}

const configFiles = (): Array<string> => [
  join(process.cwd(), "b3.json"),
  join(process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "b3", "config.json")
]

const words = (s: string) => s.split(/\s+/).filter((w) => w.length > 0)

export const loadConfig = (env: NodeJS.ProcessEnv = process.env): B3Config => {
  let store = ""
  let substituters: ReadonlyArray<string> = []
  let trustedPublicKeys: ReadonlyArray<string> = []
  let plugins: ReadonlyArray<string> = []
  const sources: Record<string, string> = { store: "default", substituters: "default", trustedPublicKeys: "default", plugins: "default" }
  const problems: Array<string> = []
  const file = configFiles().find((f) => existsSync(f))
  if (file) {
    try {
      if (statSync(file).size > maxSmallFileBytes) throw new Error(`more than ${maxSmallFileBytes >> 20} MiB`)
      const json = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>
      const stringList = (key: string, value: unknown) => {
        if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value as Array<string>
        if (typeof value === "string") return words(value)
        problems.push(`${file}: '${key}' must be a string or a list of strings`)
        return undefined
      }
      for (const key of Object.keys(json)) {
        if (!["store", "substituters", "trustedPublicKeys", "plugins"].includes(key)) problems.push(`${file}: unknown setting '${key}'`)
      }
      if (typeof json.store === "string") { store = json.store; sources.store = file } else if (json.store !== undefined) problems.push(`${file}: 'store' must be a string`)
      if (json.substituters !== undefined) { const v = stringList("substituters", json.substituters); if (v) { substituters = v; sources.substituters = file } }
      if (json.trustedPublicKeys !== undefined) { const v = stringList("trustedPublicKeys", json.trustedPublicKeys); if (v) { trustedPublicKeys = v; sources.trustedPublicKeys = file } }
      if (json.plugins !== undefined) { const v = stringList("plugins", json.plugins); if (v) { plugins = v; sources.plugins = file } }
    } catch (e) {
      problems.push(`${file}: not valid JSON (${(e as Error).message})`)
    }
  }
  if (env.B3_STORE) { store = env.B3_STORE; sources.store = "B3_STORE" }
  if (env.B3_SUBSTITUTERS !== undefined) { substituters = words(env.B3_SUBSTITUTERS); sources.substituters = "B3_SUBSTITUTERS" }
  if (env.B3_TRUSTED_PUBLIC_KEYS !== undefined) { trustedPublicKeys = words(env.B3_TRUSTED_PUBLIC_KEYS); sources.trustedPublicKeys = "B3_TRUSTED_PUBLIC_KEYS" }
  if (env.B3_PLUGINS !== undefined) { plugins = words(env.B3_PLUGINS); sources.plugins = "B3_PLUGINS" }
  return { store, substituters, trustedPublicKeys, plugins, sources, ...(file ? { file } : {}), problems }
}

let loaded: B3Config | undefined
/**
 * The configuration of this run, read on first call. Not a module-level constant: the CLI starts from a
 * V8 startup snapshot (snapshot-entry.ts) in which module-level values are those of the build, so the
 * cwd, HOME and B3_* of the run must be read at run time.
 */
export const config = (): B3Config => loaded ??= loadConfig()
/** A flag default from the configuration, read when the command line is parsed (not when the flag is defined). */
export const configDefault = <A>(get: (config: B3Config) => A): Effect.Effect<A> => Effect.sync(() => get(config()))
