/** `b3 nix-store --serve [--write]`: Nix's serve protocol on stdin/stdout, for ssh:// stores and remote builds. */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { UsageError } from "../output.ts"
import { storeFlag, switchFlag } from "../flags.ts"
import { openCliStore } from "../open-store.ts"

export const nixStoreCommand = Command.make("nix-store", {
  serve: switchFlag("serve", "speak Nix's serve protocol on stdin/stdout (what ssh:// stores and remote builders run)"),
  write: switchFlag("write", "allow importing paths and building"),
  store: storeFlag
}, (args) => Effect.scoped(Effect.gen(function*() {
  if (!args.serve) return yield* new UsageError({ reason: "b3 nix-store only implements --serve (use b3's own commands otherwise)" })
  const store = yield* openCliStore(args.store)
  const { serve } = yield* Effect.promise(() => import("../../servers/serve-protocol/server.ts"))
  yield* serve(process.stdin, process.stdout, { write: args.write, log: (chunk) => { process.stderr.write(chunk) } }).pipe(Effect.provideContext(store))
}))).pipe(
  Command.withShortDescription("Serve a store over Nix's serve protocol on stdin/stdout (nix-store --serve)."),
  Command.withDescription("Serve a store over Nix's serve protocol (2.7, as `nix-store --serve` of Nix 2.8) on stdin/stdout, so that Nix can use this machine as an ssh:// store or remote builder: give it `remote-program=b3 nix-store` (and `remote-store=URI` for another store than the default). Build logs go to stderr."),
  Command.withExamples([
    { command: "nix copy --to 'ssh://builder?remote-program=b3 nix-store' ./result", description: "copy to a machine that has b3 but no Nix" },
    { command: "nix-build --builders 'ssh://builder?remote-program=b3%20nix-store x86_64-linux' …", description: "build on a b3 machine" }
  ]))
