/**
 * The `daemon`/`unix://` store (b3 as a client of a Nix daemon): the store conformance suite over
 * a real `nix-daemon` started on a private socket over a chroot store, and over b3's own daemon;
 * `b3 build --store unix://…` building through nix-daemon.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { join } from "node:path"
import { runB3 } from "../support/b3.ts"
import { addBusybox } from "../support/busybox.ts"
import { startB3Daemon, startNixDaemon } from "../support/daemons.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"
import { storeConformance, uriStore } from "./store-suite.ts"
import { chmodSync, writeFileSync } from "node:fs"

const scratch = Effect.acquireRelease(Effect.sync(() => makeScratch("b3-dc-")), (dir) => Effect.sync(() => removeScratch(dir)))

const openOver = (start: (dir: string) => Effect.Effect<{ uri: string }, Error, Scope.Scope>) => () =>
  uriStore(Effect.gen(function*() {
    const dir = yield* scratch
    return (yield* start(dir)).uri
  }))

storeConformance("daemon client over Nix's nix-daemon", openOver((dir) => startNixDaemon(join(dir, "r"), join(dir, "s"))), { checksReferences: true })
storeConformance("daemon client over b3 daemon", openOver((dir) => startB3Daemon(join(dir, "r"), join(dir, "s"), ["--trust", "all"])), { checksReferences: true })

describe("b3 build through nix-daemon", () => {
  it.effect("builds a derivation with nix-daemon and reports its output", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratch
    chmodSync(dir, 0o755) // Nix's build users must reach the chroot store
    const root = join(dir, "r")
    const bb = addBusybox(root)
    const daemon = yield* startNixDaemon(root, join(dir, "s"), ["--option", "sandbox", "true"])
    const nixFile = join(dir, "t.nix")
    writeFileSync(nixFile, `let bb = builtins.storePath ${bb}; in derivation { name = "via-daemon"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
      args = ["-c" "\${bb}/bin/busybox echo from the builder; \${bb}/bin/busybox mkdir $out; echo built > $out/file"]; }`)
    const drv = nix("nix-instantiate", ["--store", daemon.uri, nixFile])
    const result = runB3(["--verbose", "build", "--store", daemon.uri, drv])
    expect(result.stderr, result.stderr).toContain("from the builder")
    expect(result.status).toBe(0)
    const out = result.stdout.trim()
    expect(out).toMatch(/^\/nix\/store\/[a-z0-9]{32}-via-daemon$/)
    expect(nix("nix-store", ["--store", daemon.uri, "-q", "--deriver", out])).toBe(drv)
    // and the same output as Nix's own build of it in a plain chroot store
    const plain = join(dir, "plain")
    addBusybox(plain)
    expect(nix("nix-build", ["--store", plain, nixFile, "--no-out-link"])).toBe(out)
  })))
})
