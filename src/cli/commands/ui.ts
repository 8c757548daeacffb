/** `b3 ui`: the web view of a store (closures, sizes, why-depends, files, logs), read-only. */
import { Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { storeFlag } from "../flags.ts"
import { cliStore } from "../open-store.ts"
import { UsageError } from "../output.ts"
import { trustedKeysFlag } from "../trust.ts"
import { parseListen, serve } from "./serve.ts"

export const uiCommand = Command.make("ui", {
  store: storeFlag,
  listen: Flag.String("listen").pipe(Flag.withDefault("127.0.0.1:5000"), Flag.withDescription("HOST:PORT to listen on (port 0 picks a free port)")),
  trustedPublicKeys: trustedKeysFlag,
  roots: Argument.String("path").pipe(Argument.variadic({ min: 0 }), Argument.withDescription("store paths the start page lists (on a binary cache, search covers them and their closures)"))
}, (args) => Effect.gen(function*() {
  const listen = parseListen(args.listen)
  if (!listen) return yield* new UsageError({ reason: `--listen takes HOST:PORT, e.g. 127.0.0.1:5000 (not '${args.listen}')` })
  return yield* serve(listen, { secretKey: undefined, compression: "none", ui: { trustedPublicKeys: args.trustedPublicKeys, roots: args.roots } }).pipe(
    Effect.provide(cliStore(args.store)))
})).pipe(
  Command.withShortDescription("Serve a web view of a store: search, path facts, files, logs, closure sizes, dependency graph, why-depends, closure diff."),
  Command.withDescription("Serve a read-only web view of any store b3 opens (local, file, HTTP, S3, IPFS): search paths, their facts, files and build logs; a closure's sizes as a treemap or sunburst (NAR size and added size), its dependency graph, why-depends with the file and offset holding each reference, and the diff of two closures. The binary-cache protocol is served on the same listener (as `b3 serve`); the page is under /ui/. Listens on 127.0.0.1 unless told otherwise. Prints 'serving STORE at URL' and 'web view at URL' (with --json {\"store\", \"url\", \"ui\"})."),
  Command.withExamples([
    { command: "b3 ui --store /tmp/r", description: "browse a local store at http://127.0.0.1:5000/ui/" },
    { command: "b3 ui --store https://cache.nixos.org /nix/store/…-hello-2.12", description: "browse a path's closure in a binary cache" }
  ]))
