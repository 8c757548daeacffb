/**
 * `post-build-hook` through `b3 daemon`, side by side with Nix 2.8's own `nix-daemon`: each over a
 * chroot store of its own, started by the test in the same environment, with
 * `nix-build --post-build-hook HOOK` as the client. The hook records DRV_PATH, OUT_PATHS and
 * NIX_CONFIG; what b3's daemon hands it must be what Nix's hands it, the client must show its
 * output as Nix's does, and a failing hook must fail the build the same way. Then the daemon's own
 * hook (`b3 daemon --post-build-hook`) with an untrusted client, whose own hook is ignored.
 *
 * Nix 2.8.0's daemon hands the hook an empty OUT_PATHS: buildDone reads the outputs from
 * buildResult before done() fills it in (a regression 2.8.1 fixed by using registerOutputs'
 * result). b3 gives the built outputs, as 2.8.1 and the manual do; the test checks them against
 * what nix-build prints and `nix-store -q --outputs`.
 */
import { Effect, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startB3Daemon, startNixDaemon } from "../support/daemons.ts"
import { hostBusybox } from "../support/busybox.ts"
import { makeScratch, nixEnv, nixRunner, nixSandboxEnv, removeScratch } from "../support/nix.ts"

const env = nixSandboxEnv
const { run, ok } = nixRunner(env)

let scope: Scope.Closeable
let dir: string
/** unix:// URIs of b3's daemon and Nix's, each over its own chroot store. */
let b3: string
let nixd: string
/** The same with `?root=`: Nix reads .drv files of a unix:// store from the files (`-q --outputs`). */
const withRoot = (uri: string) => `${uri}?root=${join(dir, uri.includes("nix.sock") ? "nix" : "b3")}`
let nixFile: string

/** A hook that appends "DRV_PATH|OUT_PATHS|NIX_CONFIG (lines joined by ;)" to `record`, says so on stdout and stderr, and exits `status`. */
const writeHook = (name: string, record: string, status = 0): string => {
  const hook = join(dir, name)
  writeFileSync(hook, [
    "#!/bin/sh",
    `echo "$DRV_PATH|$OUT_PATHS|$(printf '%s' "$NIX_CONFIG" | tr '\\n' ';')" >> ${record}`,
    `echo "hook saw $DRV_PATH"`,
    `echo "to stderr" >&2`,
    `exit ${status}`,
    ""
  ].join("\n"), { mode: 0o755 })
  return hook
}

const records = (file: string) => existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((l) => l !== "").sort() : []

beforeAll(async () => {
  dir = makeScratch("b3-pbh-")
  chmodSync(dir, 0o755) // build users must reach the chroot stores
  scope = Effect.runSync(Scope.make())
  // the same environment as nix-daemon's (startNixDaemon's: nixEnv, with its NIX_CONFIG)
  b3 = (await Effect.runPromise(Scope.provide(scope)(startB3Daemon(join(dir, "b3"), join(dir, "b3.sock"), ["--trust", "all"], nixEnv)))).uri
  nixd = (await Effect.runPromise(Scope.provide(scope)(startNixDaemon(join(dir, "nix"), join(dir, "nix.sock"))))).uri
  const staging = join(dir, "bb")
  mkdirSync(join(staging, "bin"), { recursive: true })
  copyFileSync(hostBusybox, join(staging, "bin", "busybox"))
  symlinkSync("busybox", join(staging, "bin", "sh"))
  const bb = ok("nix-store", ["--store", b3, "--add-fixed", "--recursive", "sha256", staging])
  expect(ok("nix-store", ["--store", nixd, "--add-fixed", "--recursive", "sha256", staging])).toBe(bb)
  // a dependency, and a derivation with two outputs; `salt` makes fresh ones for each test
  nixFile = join(dir, "hooked.nix")
  writeFileSync(nixFile, `{ salt }:
let bb = builtins.storePath ${bb};
    dep = derivation { name = "dep-\${salt}"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
      args = ["-c" "echo dependency > $out"]; };
in derivation { name = "two-\${salt}"; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; outputs = ["out" "dev"];
  args = ["-c" "echo \${dep} > $out; echo dev > $dev"]; }
`)
}, 120_000)

afterAll(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  if (dir) removeScratch(dir)
})

const field = (line: string, i: number) => line.split("|")[i]!

describe("post-build-hook through b3 daemon, as through nix-daemon", () => {
  it("runs after each build with Nix's DRV_PATH and its environment, the built outputs in OUT_PATHS, its output on the client as Nix's", () => {
    const outcomes = [["b3", b3], ["nix", nixd]].map(([name, store]) => {
      const record = join(dir, `${name}.record`)
      const hook = writeHook(`${name}-hook.sh`, record)
      const r = run("nix-build", ["--store", store!, nixFile, "--argstr", "salt", "a", "--no-out-link", "--post-build-hook", hook])
      expect(r.status, r.stderr).toBe(0)
      return { store: store!, hook, r, lines: records(record) }
    })
    const [ours, theirs] = outcomes as [typeof outcomes[0], typeof outcomes[0]]
    expect(ours.r.stdout).toBe(theirs.r.stdout)
    // one run per derivation built, with the same DRV_PATH and NIX_CONFIG (the daemon's own: Nix never replaces it)
    expect(ours.lines.map((l) => `${field(l, 0)}|${field(l, 2)}`)).toEqual(theirs.lines.map((l) => `${field(l, 0)}|${field(l, 2)}`))
    expect(field(ours.lines[0]!, 2)).toBe(nixEnv["NIX_CONFIG"]!.replaceAll("\n", ";"))
    // Nix 2.8.0's empty OUT_PATHS (see the module comment); b3's: each derivation's outputs, by base name
    expect(theirs.lines.map((l) => field(l, 1))).toEqual(["", ""])
    const drv = ok("nix-instantiate", ["--store", b3, nixFile, "--argstr", "salt", "a"])
    const dep = ok("nix-store", ["--store", b3, "-q", "--references", drv]).split("\n").find((p) => p.endsWith(".drv"))!
    const base = (p: string) => p.slice(p.lastIndexOf("/") + 1)
    const outputsOf = (d: string) => ok("nix-store", ["--store", withRoot(b3), "-q", "--outputs", d]).split("\n").sort((a, b) => base(a) < base(b) ? -1 : 1).join(" ")
    expect(ours.lines.map((l) => `${field(l, 0)}|${field(l, 1)}`)).toEqual([`${dep}|${outputsOf(dep)}`, `${drv}|${outputsOf(drv)}`].sort())
    // nix-build prints the default output ('out'); the hook got it and 'dev'
    expect(outputsOf(drv).split(" ")).toHaveLength(2)
    expect(outputsOf(drv).split(" ")).toContain(ours.r.stdout)
    // the hook's stdout and stderr, as Nix's client prints them
    for (const o of outcomes) {
      expect(o.r.stderr).toContain(`post-build-hook: hook saw ${drv}`)
      expect(o.r.stderr).toContain("post-build-hook: to stderr")
    }
    // outputs already valid: no hook
    const again = join(dir, "again.record")
    ok("nix-build", ["--store", b3, nixFile, "--argstr", "salt", "a", "--no-out-link", "--post-build-hook", writeHook("again.sh", again)])
    expect(records(again)).toEqual([])
  }, 120_000)

  it("a failing hook fails the build as in Nix: the client gets the hook's exit status, nothing more is built, the outputs stay valid", () => {
    const outcomes = [["b3", b3], ["nix", nixd]].map(([name, store]) => {
      const record = join(dir, `${name}-failing.record`)
      const hook = writeHook(`${name}-failing.sh`, record, 3)
      const r = run("nix-build", ["--store", store!, nixFile, "--argstr", "salt", "b", "--no-out-link", "--post-build-hook", hook])
      return { store: store!, hook, r, lines: records(record) }
    })
    const drv = ok("nix-instantiate", ["--store", b3, nixFile, "--argstr", "salt", "b"])
    const dep = ok("nix-store", ["--store", b3, "-q", "--references", drv]).split("\n").find((p) => p.endsWith(".drv"))!
    for (const o of outcomes) {
      expect(o.r.status, o.r.stderr).toBe(1)
      expect(o.r.stderr).toContain(`error: program '${o.hook}' failed with exit code 3`)
      // the dependency's hook failed: the derivation that needs it was not built
      expect(o.lines.map((l) => field(l, 0))).toEqual([dep])
      expect(run("nix-store", ["--store", o.store, "--check-validity", ok("nix-store", ["--store", withRoot(o.store), "-q", "--outputs", dep])]).status).toBe(0)
      expect(run("nix-store", ["--store", o.store, "--check-validity", ok("nix-store", ["--store", withRoot(o.store), "-q", "--outputs", drv]).split("\n")[0]!]).status).not.toBe(0)
    }
  }, 120_000)
})

describe("the daemon's own post-build-hook", () => {
  it("runs for an untrusted client's builds, whose own post-build-hook is ignored; a trusted client's replaces it", async () => {
    const local = Effect.runSync(Scope.make())
    try {
      const { NIX_CONFIG: _, ...noConfig } = nixEnv
      const daemonRecord = join(dir, "daemon.record")
      const clientRecord = join(dir, "client.record")
      const daemonHook = writeHook("daemon-hook.sh", daemonRecord)
      const clientHook = writeHook("client-hook.sh", clientRecord)
      const untrusted = await Effect.runPromise(Scope.provide(local)(startB3Daemon(join(dir, "b3"), join(dir, "untrusted.sock"),
        ["--trust", "none", "--post-build-hook", daemonHook], noConfig)))
      const r = run("nix-build", ["--store", untrusted.uri, nixFile, "--argstr", "salt", "c", "--no-out-link", "--post-build-hook", clientHook])
      expect(r.status, r.stderr).toBe(0)
      const drv = ok("nix-instantiate", ["--store", untrusted.uri, nixFile, "--argstr", "salt", "c"])
      const dep = ok("nix-store", ["--store", untrusted.uri, "-q", "--references", drv]).split("\n").find((p) => p.endsWith(".drv"))!
      expect(records(daemonRecord).map((l) => field(l, 0))).toEqual([drv, dep].sort())
      // no NIX_CONFIG of the daemon's, and an untrusted client's settings are not passed on
      expect(records(daemonRecord).map((l) => field(l, 2))).toEqual(["", ""])
      expect(records(clientRecord)).toEqual([])

      // a trusted client's hook runs instead of the daemon's, with the client's settings as NIX_CONFIG
      const trusted = await Effect.runPromise(Scope.provide(local)(startB3Daemon(join(dir, "b3"), join(dir, "trusted.sock"),
        ["--trust", "all", "--post-build-hook", daemonHook], noConfig)))
      expect(run("nix-build", ["--store", trusted.uri, nixFile, "--argstr", "salt", "d", "--no-out-link", "--post-build-hook", clientHook]).status).toBe(0)
      expect(records(daemonRecord).length).toBe(2)
      expect(records(clientRecord).length).toBe(2)
      for (const line of records(clientRecord)) expect(field(line, 2).split(";")).toContain(`post-build-hook = ${clientHook}`)
    } finally {
      await Effect.runPromise(Scope.close(local, Exit.void))
    }
  }, 120_000)
})
