/** `b3 daemon`: serve a store to Nix (and b3) clients over Nix's worker protocol on a unix socket. */
import { Console, Context, Effect } from "effect"
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

export const daemonCommand = Command.make("daemon", {
  store: storeFlag,
  socket: Flag.String("socket").pipe(Flag.withDescription("unix socket to listen on (Nix's default is /nix/var/nix/daemon-socket/socket)")),
  socketMode: Flag.String("socket-mode").pipe(Flag.withDefault("0666"), Flag.withDescription("mode of the socket file: who may connect (default 0666: anyone, as Nix)")),
  socketGroup: Flag.String("socket-group").pipe(Flag.optional, Flag.withDescription("group of the socket file (name or gid), for a mode like 0660")),
  trust: Flag.Literals("trust", ["all", "none", "owner"]).pipe(Flag.withDefault("owner" as const),
    Flag.withDescription("which clients are trusted (Nix's trusted-users): all, none, or owner (default: all when the socket mode lets only its owner connect, else none)")),
  trustedKeys: trustedKeysFlag,
  noRequireSigs: switchFlag("no-require-sigs", "accept input-addressed paths from clients without a trusted signature (Nix's require-sigs = false)")
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
  const trustedKeys = yield* parseTrustedKeys(args.trustedKeys)
  const { listen } = yield* Effect.promise(() => import("../../servers/daemon/server.ts"))
  const read = Context.get(store, StoreRead)
  yield* listen({
    socketPath: args.socket, mode: socketMode, gid, trusted, requireSigs: !args.noRequireSigs, trustedKeys,
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
    { command: "b3 daemon --store local --socket /nix/var/nix/daemon-socket/socket --socket-mode 0660 --socket-group nixusers --trust none", description: "a system daemon for a group of untrusted users" }
  ]))
