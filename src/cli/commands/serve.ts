/** `b3 serve`: an HTTP binary cache over any store (like nix-serve / `nix copy --to http://`). */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { compressions, type Compression } from "../../io/compression.ts"
import { StoreRead } from "../../services/store-read.ts"
import { storeFlag } from "../flags.ts"
import { cliStore } from "../open-store.ts"
import { outputMode, printJson, UsageError } from "../output.ts"
import { parseTrustedKeys, readSecretKey, trustedKeysFlag } from "../trust.ts"

export const parseListen = (listen: string) => {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen)
  return m && Number(m[2]) < 65536 ? { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) } : undefined
}

/** The web view, mounted under `/ui` (its modules load only when asked for). */
const uiMount = (trustedPublicKeys: string, roots: ReadonlyArray<string>) => Effect.gen(function*() {
  const { makeUiHandler } = yield* Effect.promise(() => import("../../servers/ui/handler.ts"))
  const { nodeMount } = yield* Effect.promise(() => import("../../servers/plain-http.ts"))
  const trustedKeys = yield* parseTrustedKeys(trustedPublicKeys)
  return nodeMount({ prefix: "/ui", handle: yield* makeUiHandler({ trustedKeys, roots }) })
})

export interface ServeCommandOptions {
  readonly secretKey: string | undefined
  readonly compression: Compression
  /** Also the web view under /ui/, with these trusted keys and root paths. */
  readonly ui?: { readonly trustedPublicKeys: string; readonly roots: ReadonlyArray<string> } | undefined
}

/** Serves the store of the context at `listen` until interrupted (`b3 serve`, `b3 ui`). */
export const serve = (listen: { readonly host: string; readonly port: number }, options: ServeCommandOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const mode = yield* outputMode
    const store = yield* StoreRead
    const secretKeys = options.secretKey !== undefined ? [yield* readSecretKey(options.secretKey)] : []
    const mounts = options.ui ? [yield* uiMount(options.ui.trustedPublicKeys, options.ui.roots)] : []
    // The HTTP server is loaded here, not at start-up: no other command needs it.
    const { serveCache } = yield* Effect.promise(() => import("../../servers/http-cache.ts"))
    const address = yield* serveCache({
      ...listen,
      secretKeys,
      compression: options.compression,
      mounts,
      ...(mode.quiet ? {} : { accessLog: (line: string) => process.stderr.write(line + "\n") })
    })
    const where = `http://${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${address.port}`
    const ui = options.ui ? `${where}/ui/` : undefined
    if (mode.json) yield* printJson({ store: store.uri, url: where, ...(ui === undefined ? {} : { ui }) })
    else {
      yield* Console.log(`serving ${store.uri} at ${where}`)
      if (ui !== undefined) yield* Console.log(`web view at ${ui}`)
    }
    return yield* Effect.never
  }))

export const serveCommand = Command.make("serve", {
  store: storeFlag,
  listen: Flag.String("listen").pipe(Flag.withDefault("127.0.0.1:5000"), Flag.withDescription("HOST:PORT to listen on (port 0 picks a free port)")),
  secretKey: Flag.String("secret-key").pipe(Flag.optional, Flag.withDescription("sign narinfos on the fly with this secret key file")),
  compression: Flag.Literals("compression", compressions).pipe(Flag.withDefault("none" as const), Flag.withDescription("compress NARs on the fly")),
  ui: Flag.Boolean("ui").pipe(Flag.withDefault(false), Flag.withDescription("also serve the web view of the store under /ui/")),
  trustedPublicKeys: trustedKeysFlag
}, (args) => Effect.gen(function*() {
  const listen = parseListen(args.listen)
  if (!listen) return yield* new UsageError({ reason: `--listen takes HOST:PORT, e.g. 127.0.0.1:5000 (not '${args.listen}')` })
  return yield* serve(listen, {
    secretKey: args.secretKey._tag === "Some" ? args.secretKey.value : undefined,
    compression: args.compression,
    ui: args.ui ? { trustedPublicKeys: args.trustedPublicKeys, roots: [] } : undefined
  }).pipe(
    Effect.provide(cliStore(args.store)))
})).pipe(
  Command.withShortDescription("Serve a store as an HTTP binary cache that Nix and b3 can read (stops cleanly on Ctrl-C)."),
  Command.withDescription("Serve a store as an HTTP binary cache that Nix and b3 can read (stops cleanly on Ctrl-C). Prints 'serving STORE at URL' (with --json {\"store\", \"url\"}) once it listens; --ui adds the web view (closures, sizes, why-depends, files, logs; read-only) under /ui/ on the same listener; --quiet turns the access log off."),
  Command.withExamples([
    { command: "b3 serve --store file:///srv/cache --listen 127.0.0.1:5000", description: "serve a file cache over HTTP" },
    { command: "b3 serve --store /tmp/r --listen 127.0.0.1:0 --secret-key key.sec --quiet", description: "serve a local store on a free port, signing on the fly" },
    { command: "b3 serve --store /tmp/r --ui", description: "serve a local store, and its web view at http://127.0.0.1:5000/ui/" }
  ]))
