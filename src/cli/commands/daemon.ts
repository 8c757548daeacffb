/** `b3 daemon`: serve a store to Nix (and b3) clients over Nix's worker protocol on a unix socket. */
import { Console, Context, Effect, Exit, Result, Scope, Semaphore } from "effect"
import { mkdirSync, statSync } from "node:fs"
import { join } from "node:path"
import { makeLayout } from "../../layers/local/layout.ts"
import { backendFromContext } from "../../servers/daemon/backend.ts"
import type { StoreContext } from "../../services/registry.ts"
import { parseStoreUri } from "../../services/store-uri.ts"
import { StoreRead } from "../../services/store-read.ts"
import { Command, Flag } from "effect/cli"
import { execFileSync } from "node:child_process"
import { BadStoreUri } from "../../services/store-errors.ts"
import { storeFlag, switchFlag } from "../flags.ts"
import { outputMode, printJson } from "../output.ts"
import { openCliStore } from "../open-store.ts"
import { parseTrustedKeys, trustedKeysFlag } from "../trust.ts"
import { version } from "../version.ts"

const parseMode = (text: string): number | undefined => /^0?[0-7]{3}$/.test(text) ? parseInt(text, 8) : undefined

const parseGroup = (text: string): number | undefined => {
  if (/^\d+$/.test(text)) return Number(text)
  try { return Number(execFileSync("getent", ["group", text]).toString().split(":")[2]) } catch { return undefined }
}

/** The layout of a local store URI, if it is one. */
const localLayout = (uri: string) => {
  const parsed = parseStoreUri(uri)
  if (Result.isFailure(parsed) || parsed.success.scheme !== "local") return undefined
  const p = parsed.success.params
  const root = p.get("root") ?? undefined
  return makeLayout({ storeDir: p.get("store") ?? "/nix/store", ...(root ? { root } : {}), ...(p.get("state") ? { stateDir: p.get("state")! } : {}) })
}

/**
 * The directories Nix's daemon makes when it opens the local store for a client (it does for each
 * one): a client may have removed one (Nix's tests remove profiles/) and expects it back; `.links`
 * is where optimising (`nix-store --optimise`, `auto-optimise-store`) keeps its hard links.
 */
const remakeDirs = (layout: ReturnType<typeof localLayout>) => {
  if (layout === undefined) return
  for (const dir of [join(layout.stateDir, "profiles"), layout.gcRootsDir, join(layout.realStoreDir, ".links")]) {
    try { mkdirSync(dir, { recursive: true }) } catch { /* the store's own open reports what is wrong */ }
  }
}

const inode = (file: string) => { try { return statSync(file).ino } catch { return -1 } }

/**
 * Each connection gets the store as it is when the connection opens, as with Nix's daemon, which
 * opens the store for each client: a local store whose database was replaced (the store deleted
 * and made anew) is opened again for new connections; the old one closes when its last
 * connection ends.
 */
const reopeningBackends = (uri: string, first: StoreContext) => Effect.gen(function*() {
  const layout = localLayout(uri)
  const db = layout?.dbPath
  interface Generation { context: StoreContext; scope: Scope.Closeable | undefined; users: number; retired: boolean; ino: number }
  let current: Generation = { context: first, scope: undefined, users: 0, retired: false, ino: db ? inode(db) : -1 }
  const lock = yield* Semaphore.make(1)
  const close = (g: Generation) => g.scope ? Scope.close(g.scope, Exit.void) : Effect.void
  const acquire = lock.withPermits(1)(Effect.gen(function*() {
    remakeDirs(layout)
    if (db && inode(db) !== current.ino) {
      const old = current
      const scope = yield* Scope.make()
      const context = yield* Effect.orDie(openCliStore(uri).pipe(Scope.provide(scope)))
      current = { context, scope, users: 0, retired: false, ino: inode(db) }
      old.retired = true
      if (old.users === 0) yield* close(old)
    }
    const g = current
    g.users++
    const backend = yield* backendFromContext.pipe(Effect.provideContext(g.context))
    const release = lock.withPermits(1)(Effect.suspend(() => {
      g.users--
      return g.retired && g.users === 0 ? close(g) : Effect.void
    }))
    return { backend, release }
  }))
  return acquire
})

export const daemonCommand = Command.make("daemon", {
  store: storeFlag,
  socket: Flag.String("socket").pipe(Flag.withDescription("unix socket to listen on (Nix's default is /nix/var/nix/daemon-socket/socket)")),
  socketMode: Flag.String("socket-mode").pipe(Flag.withDefault("0666"), Flag.withDescription("mode of the socket file: who may connect (default 0666: anyone, as Nix)")),
  socketGroup: Flag.String("socket-group").pipe(Flag.optional, Flag.withDescription("group of the socket file (name or gid), for a mode like 0660")),
  trust: Flag.Literals("trust", ["all", "none", "owner"]).pipe(Flag.withDefault("owner" as const),
    Flag.withDescription("which clients are trusted (Nix's trusted-users): all, none, or owner (default: all when the socket mode lets only its owner connect, else none)")),
  trustedKeys: trustedKeysFlag,
  sandboxPaths: Flag.String("sandbox-paths").pipe(Flag.withDefault(""), Flag.withDescription("host paths shown read-only in build sandboxes, space-separated (Nix's sandbox-paths: PATH, TARGET=SOURCE, PATH?)")),
  secretKeyFiles: Flag.String("secret-key-files").pipe(Flag.withDefault(""), Flag.withDescription("secret key files whose keys sign what the daemon builds, space-separated (Nix's secret-key-files)")),
  noRequireSigs: switchFlag("no-require-sigs", "accept input-addressed paths from clients without a trusted signature (Nix's require-sigs = false)"),
  autoOptimiseStore: switchFlag("auto-optimise-store", "hard-link the files of each new path to identical files already in the store (Nix's auto-optimise-store; trusted clients may set it too)"),
  postBuildHook: Flag.String("post-build-hook").pipe(Flag.withDefault(""), Flag.withDescription("a program run after each build, as the daemon's user, with DRV_PATH and OUT_PATHS in its environment; its output goes to the client's log and its failure fails the build (Nix's post-build-hook; trusted clients may set their own)"))
}, (args) => Effect.scoped(Effect.gen(function*() {
  const mode = yield* outputMode
  const socketMode = parseMode(args.socketMode)
  if (socketMode === undefined) return yield* new BadStoreUri({ uri: args.socketMode, reason: "--socket-mode takes an octal mode like 0666 or 0600" })
  const gid = args.socketGroup._tag === "Some" ? parseGroup(args.socketGroup.value) : undefined
  if (args.socketGroup._tag === "Some" && (gid === undefined || Number.isNaN(gid))) {
    return yield* new BadStoreUri({ uri: args.socketGroup.value, reason: "--socket-group: no such group" })
  }
  const trusted = args.trust === "all" || (args.trust === "owner" && (socketMode & 0o077) === 0)
  const store = yield* openCliStore(args.store)
  const backends = yield* reopeningBackends(args.store, store)
  const trustedKeys = yield* parseTrustedKeys(args.trustedKeys)
  const { listen } = yield* Effect.promise(() => import("../../servers/daemon/server.ts"))
  const read = Context.get(store, StoreRead)
  yield* listen({
    socketPath: args.socket, mode: socketMode, gid, trusted, requireSigs: !args.noRequireSigs, trustedKeys, backends,
    sandboxPaths: args.sandboxPaths.split(/\s+/).filter((p) => p.length > 0),
    secretKeyFiles: args.secretKeyFiles.split(/\s+/).filter((p) => p.length > 0),
    autoOptimiseStore: args.autoOptimiseStore,
    ...(args.postBuildHook !== "" ? { postBuildHook: args.postBuildHook } : {}),
    version: `2.8.0 (b3 ${version})`,
    ...(mode.verbose ? { log: (line: string) => process.stderr.write(`b3 daemon: ${line}\n`) } : {})
  }).pipe(Effect.provideContext(store))
  if (mode.json) yield* printJson({ store: read.uri, socket: args.socket, trusted })
  else if (!mode.quiet) yield* Console.error(`serving ${read.uri} on ${args.socket} (clients ${trusted ? "trusted" : "untrusted"})`)
  return yield* Effect.never
}))).pipe(
  Command.withShortDescription("Serve a store to Nix over the daemon protocol (a unix socket); stops cleanly on Ctrl-C."),
  Command.withDescription("Serve a store to Nix clients over Nix's worker protocol (1.34, as nix-daemon 2.8) on a unix socket: nix-store, nix-build, nix copy … with --store unix://SOCKET or NIX_REMOTE=unix://SOCKET use it as their store, and builds run in b3's sandbox. Who may connect follows from --socket-mode/--socket-group; --trust says whether they are trusted."),
  Command.withExamples([
    { command: "b3 daemon --store /tmp/r --socket /tmp/b3.sock", description: "serve a chroot store; then: nix-store --store unix:///tmp/b3.sock -q --references …" },
    { command: "b3 daemon --store local --socket /nix/var/nix/daemon-socket/socket --socket-mode 0660 --socket-group nixusers --trust none", description: "a system daemon for a group of untrusted users" },
    { command: "b3 daemon --store /tmp/r --socket /tmp/b3.sock --post-build-hook /etc/b3/upload.sh", description: "run a script after each build (it gets DRV_PATH and OUT_PATHS), e.g. to copy the outputs to a cache" }
  ]))
