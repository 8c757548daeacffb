/**
 * Remote builds over real ssh (Debian's OpenSSH server, started by the test on 127.0.0.1 with
 * throwaway keys), both ways:
 *  - Nix 2.8 with `builders = ssh://…` builds on b3 (`remote-program=b3 nix-store`);
 *  - `b3 build --builders ssh://…` builds on a machine running Nix's `nix-store --serve`.
 * Outputs equal a local build's (same paths, same NAR hashes).
 */
import { Effect, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { b3Bin } from "../support/b3.ts"
import { hostBusybox } from "../support/busybox.ts"
import { makeScratch, nixEnv, removeScratch } from "../support/nix.ts"
import { startSshd, type RunningSshd } from "../support/sshd.ts"

let scope: Scope.Closeable
let dir: string
let sshd: RunningSshd
let env: NodeJS.ProcessEnv
let bbDir: string

const run = (command: string, args: ReadonlyArray<string>) => {
  const r = spawnSync(command, args, { env, maxBuffer: 1 << 26 })
  return { status: r.status ?? -1, stdout: r.stdout.toString().trim(), stderr: r.stderr.toString() }
}
const ok = (command: string, args: ReadonlyArray<string>) => {
  const r = run(command, args)
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${r.status}):\n${r.stderr}`)
  return r.stdout
}
const narHash = (store: string, path: string) => (JSON.parse(ok("nix", ["path-info", "--store", store, "--json", path]))[0] as { narHash: string }).narHash

/** A two-derivation graph (the second uses the first) on busybox, as a Nix file. */
const graph = (bb: string, tag: string) => `
let bb = builtins.storePath ${bb};
    dep = derivation { name = "dep-${tag}"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
      args = ["-c" "\${bb}/bin/busybox mkdir $out; echo ${tag} > $out/data; \${bb}/bin/busybox ln -s \${bb} $out/bb"]; };
in derivation { name = "top-${tag}"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
  args = ["-c" "echo building top on the builder; \${bb}/bin/busybox mkdir $out; echo \${dep} > $out/dep; \${bb}/bin/busybox cat \${dep}/data > $out/copy"]; }
`

const addBb = (store: string) => ok("nix-store", ["--store", store, "--add-fixed", "--recursive", "sha256", bbDir])

beforeAll(async () => {
  dir = makeScratch("b3-rb-")
  chmodSync(dir, 0o755)
  scope = Effect.runSync(Scope.make())
  sshd = await Effect.runPromise(Scope.provide(scope)(startSshd(join(dir, "sshd"))))
  env = { ...nixEnv, NIX_CONFIG: "experimental-features = nix-command\nsubstituters =\nsandbox = true", NIX_SSHOPTS: sshd.sshOpts }
  bbDir = join(dir, "bb")
  mkdirSync(join(bbDir, "bin"), { recursive: true })
  copyFileSync(hostBusybox, join(bbDir, "bin", "busybox"))
  symlinkSync("busybox", join(bbDir, "bin", "sh"))
  // the remote side's Nix runs with sandbox on (chroot stores need it), whatever the ssh login's environment
  writeFileSync(join(dir, "nix-store-sandboxed"), `#!/bin/sh\nexport NIX_CONFIG="experimental-features = nix-command\nsubstituters =\nsandbox = true"\nexec nix-store "$@"\n`, { mode: 0o755 })
})

afterAll(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  if (dir) removeScratch(dir)
})

describe("remote builds over ssh", () => {
  it("ssh works with the throwaway keys", () => {
    expect(ok("ssh", [...sshd.sshOpts.split(" "), `${sshd.user}@127.0.0.1`, "echo", "reached"])).toBe("reached")
  })

  it("Nix 2.8 builds on b3 through builders = ssh://… (b3 nix-store --serve): outputs equal a local build", () => {
    const local = join(dir, "nix-local")
    const bb = addBb(local)
    const file = join(dir, "to-b3.nix")
    writeFileSync(file, graph(bb, "nix-to-b3"))
    const remote = join(dir, "b3-remote")
    const builders = `ssh://${sshd.user}@127.0.0.1?remote-program=${encodeURIComponent(`${b3Bin} nix-store`)}&remote-store=${remote} x86_64-linux`
    const r = run("nix-build", ["--store", local, file, "--no-out-link", "--max-jobs", "0", "--builders", builders])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toContain("on 'ssh://")
    expect(r.stderr).toContain("building top on the builder")
    const out = r.stdout
    // built on b3: it is valid there, with the same hash as Nix's own build of it
    expect(ok(b3Bin, ["path-info", "--store", remote, out])).toBe(out)
    const reference = join(dir, "nix-reference")
    addBb(reference)
    expect(ok("nix-build", ["--store", reference, file, "--no-out-link"])).toBe(out)
    expect(narHash(local, out)).toBe(narHash(reference, out))
    expect(JSON.parse(ok(b3Bin, ["--json", "path-info", "--store", remote, out]))[0].narHash).toBe(narHash(reference, out))
    ok("nix-store", ["--store", local, "--verify", "--check-contents"])
  })

  it("b3 build --builders ssh://… builds on a machine running Nix's nix-store --serve: outputs equal a local build", () => {
    const local = join(dir, "b3-local")
    const bb = addBb(local)
    const file = join(dir, "to-nix.nix")
    writeFileSync(file, graph(bb, "b3-to-nix"))
    const drv = ok("nix-instantiate", ["--store", local, file])
    const remote = join(dir, "nix-remote")
    const builders = `ssh://${sshd.user}@127.0.0.1?remote-program=${join(dir, "nix-store-sandboxed")}&remote-store=${remote} x86_64-linux - 2 1`
    const r = run(b3Bin, ["build", "--print-build-logs", "--store", local, "--max-jobs", "0", "--builders", builders, drv])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toContain("building top on the builder")
    const out = r.stdout
    // Nix built it: it is valid in the remote Nix store; b3 registered what came back
    expect(ok("nix-store", ["--store", remote, "--check-validity", out])).toBe("")
    const reference = join(dir, "b3-reference")
    addBb(reference)
    const referenceDrv = ok("nix-instantiate", ["--store", reference, file])
    expect(referenceDrv).toBe(drv)
    expect(ok(b3Bin, ["build", "--store", reference, drv])).toBe(out)
    expect(narHash(local, out)).toBe(narHash(reference, out))
    expect(narHash(remote, out)).toBe(narHash(reference, out))
    ok(b3Bin, ["store", "verify", "--store", local])
    const deriver = JSON.parse(ok(b3Bin, ["--json", "path-info", "--store", local, out]))[0].deriver
    expect(deriver).toBe(drv)
  })

  it("b3 build --builders refuses a build no machine can take when local builds are off", () => {
    const local = join(dir, "b3-nomachine")
    const bb = addBb(local)
    const file = join(dir, "arm.nix")
    writeFileSync(file, `let bb = builtins.storePath ${bb}; in derivation { name = "arm"; system = "aarch64-linux"; builder = "\${bb}/bin/sh"; args = ["-c" "echo > $out"]; }`)
    const drv = ok("nix-instantiate", ["--store", local, file])
    const r = run(b3Bin, ["build", "--store", local, "--max-jobs", "0", "--builders", `ssh://${sshd.user}@127.0.0.1 x86_64-linux`, drv])
    expect(r.status).toBe(5)
    expect(r.stderr).toContain("aarch64-linux")
  })
})
