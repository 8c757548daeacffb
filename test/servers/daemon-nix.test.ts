/**
 * `b3 daemon` under real Nix 2.8: Nix's own commands, pointed at b3's daemon with
 * `--store unix://SOCKET`, over a chroot local store, give what they give on a plain Nix store
 * (the reference, built with Nix's sandbox in another chroot store). The daemon and the stores are
 * started by the test and stopped with its scope.
 */
import { Effect, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startB3Daemon, type RunningDaemon } from "../support/daemons.ts"
import { hostBusybox } from "../support/busybox.ts"
import { makeScratch, nixRunner, nixSandboxEnv, removeScratch } from "../support/nix.ts"

const env = nixSandboxEnv
const { run, ok } = nixRunner(env)

let scope: Scope.Closeable
let dir: string
let daemon: RunningDaemon
/** b3's store behind the daemon, and the plain Nix store the results are compared with. */
let b3Root: string
let nixRoot: string
let S: string
let SR: string
let bb: string
let nixFile: string

const pathInfo = (store: string, args: ReadonlyArray<string>) =>
  (JSON.parse(ok("nix", ["path-info", "--store", store, "--json", ...args])) as Array<Record<string, unknown>>)
    .map(({ registrationTime: _t, signatures: _s, ...rest }) => rest)

beforeAll(async () => {
  dir = makeScratch("b3-dn-")
  chmodSync(dir, 0o755) // Nix's build users must reach the chroot stores
  b3Root = join(dir, "b3")
  nixRoot = join(dir, "nix")
  scope = Effect.runSync(Scope.make())
  daemon = await Effect.runPromise(Scope.provide(scope)(startB3Daemon(b3Root, join(dir, "socket"), ["--trust", "all"])))
  S = daemon.uri
  SR = `${S}?root=${b3Root}` // Nix reads NARs of a unix:// store from its files, as for its own daemon
  const staging = join(dir, "bb")
  mkdirSync(join(staging, "bin"), { recursive: true })
  copyFileSync(hostBusybox, join(staging, "bin", "busybox"))
  symlinkSync("busybox", join(staging, "bin", "sh"))
  bb = ok("nix-store", ["--store", S, "--add-fixed", "--recursive", "sha256", staging])
  expect(ok("nix-store", ["--store", nixRoot, "--add-fixed", "--recursive", "sha256", staging])).toBe(bb)
  nixFile = join(dir, "hello.nix")
  writeFileSync(nixFile, `
let bb = builtins.storePath ${bb};
    dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
      args = ["-c" "\${bb}/bin/busybox mkdir $out; echo dependency > $out/data; \${bb}/bin/busybox ln -s \${bb}/bin/busybox $out/tool"]; };
in derivation { name = "hello"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
  args = ["-c" "echo building hello; \${bb}/bin/busybox mkdir $out; echo \${dep} > $out/uses; \${bb}/bin/busybox cat \${dep}/data > $out/copy; echo done"]; }
`)
})

afterAll(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  if (dir) removeScratch(dir)
})

describe("Nix 2.8 clients against b3 daemon", () => {
  it("nix-store --add and --add-fixed give Nix's paths, hashes and sizes", () => {
    const src = join(dir, "src")
    mkdirSync(join(src, "sub"), { recursive: true })
    writeFileSync(join(src, "a.txt"), "alpha\n")
    writeFileSync(join(src, "sub", "run"), "#!/bin/sh\n", { mode: 0o755 })
    symlinkSync("../a.txt", join(src, "sub", "link"))
    const file = join(dir, "file.txt")
    writeFileSync(file, "some text\n")
    for (const args of [["--add", src], ["--add", file], ["--add-fixed", "sha1", file], ["--add-fixed", "--recursive", "sha512", src]]) {
      const ours = ok("nix-store", ["--store", S, ...args])
      expect(ours).toBe(ok("nix-store", ["--store", nixRoot, ...args]))
      expect(pathInfo(S, [ours])).toEqual(pathInfo(nixRoot, [ours]))
    }
  })

  it("nix-instantiate writes the .drv files into b3's store, byte for byte as Nix does", () => {
    const drv = ok("nix-instantiate", ["--store", S, nixFile])
    expect(drv).toBe(ok("nix-instantiate", ["--store", nixRoot, nixFile]))
    expect(readFileSync(join(b3Root, drv))).toEqual(readFileSync(join(nixRoot, drv)))
    const deps = ok("nix-store", ["--store", S, "-q", "--references", drv]).split("\n").sort()
    expect(deps).toEqual(ok("nix-store", ["--store", nixRoot, "-q", "--references", drv]).split("\n").sort())
  })

  it("nix-build builds in b3's sandbox: the same outputs as Nix's, and b3's log on the client", () => {
    const result = run("nix-build", ["--store", S, nixFile, "-o", join(dir, "result")])
    expect(result.status, result.stderr).toBe(0)
    expect(result.stderr).toMatch(/building '\/nix\/store\/[a-z0-9]{32}-hello\.drv'/)
    expect(result.stderr).toContain("building hello")
    const out = result.stdout
    expect(out).toBe(ok("nix-build", ["--store", nixRoot, nixFile, "--no-out-link"]))
    const closure = ok("nix-store", ["--store", S, "-qR", out]).split("\n")
    expect(closure.sort()).toEqual(ok("nix-store", ["--store", nixRoot, "-qR", out]).split("\n").sort())
    expect(pathInfo(S, ["-r", out])).toEqual(pathInfo(nixRoot, ["-r", out]))
  })

  it("nix path-info --json --closure-size is Nix's", () => {
    const out = ok("nix-build", ["--store", S, nixFile, "--no-out-link"])
    expect(pathInfo(S, ["--closure-size", "-r", out])).toEqual(pathInfo(nixRoot, ["--closure-size", "-r", out]))
    const withDrv = ok("nix-instantiate", ["--store", S, nixFile])
    expect(pathInfo(SR, ["--closure-size", "-r", withDrv])).toEqual(pathInfo(nixRoot, ["--closure-size", "-r", withDrv]))
  })

  it("nix-store -q --references/--referrers/--requisites/--tree/--deriver answer as on Nix's store", () => {
    const out = ok("nix-build", ["--store", S, nixFile, "--no-out-link"])
    const drv = ok("nix-instantiate", ["--store", S, nixFile])
    for (const query of [["--references", out], ["--referrers", bb], ["--requisites", out], ["--requisites", drv], ["--tree", out], ["--tree", drv], ["--deriver", out], ["--outputs", drv], ["--hash", out], ["--size", out], ["--referrers-closure", bb]]) {
      const ours = ok("nix-store", ["--store", SR, "-q", ...query])
      const theirs = ok("nix-store", ["--store", nixRoot, "-q", ...query])
      expect(query[0] === "--tree" ? ours : ours.split("\n").sort(), query.join(" ")).toEqual(query[0] === "--tree" ? theirs : theirs.split("\n").sort())
    }
  })

  it("nix copy --to and --from move closures with their metadata", () => {
    // a closure Nix built, into b3
    const out = ok("nix-build", ["--store", nixRoot, nixFile, "--no-out-link"])
    const other = join(dir, "other.nix")
    writeFileSync(other, `let bb = builtins.storePath ${bb}; in derivation { name = "other"; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = ["-c" "echo \${bb} > $out"]; }`)
    const otherOut = ok("nix-build", ["--store", nixRoot, other, "--no-out-link"])
    ok("nix", ["copy", "--no-check-sigs", "--from", nixRoot, "--to", S, otherOut, out])
    expect(pathInfo(S, ["-r", otherOut])).toEqual(pathInfo(nixRoot, ["-r", otherOut]).map((i) => ({ ...i, ultimate: undefined })).map(({ ultimate: _u, ...rest }) => rest))
    // and back out of b3 into a fresh store
    const fresh = join(dir, "fresh")
    ok("nix", ["copy", "--no-check-sigs", "--from", SR, "--to", fresh, otherOut])
    expect(pathInfo(fresh, ["-r", otherOut]).map(({ ultimate: _u, ...rest }) => rest)).toEqual(pathInfo(nixRoot, ["-r", otherOut]).map(({ ultimate: _u, ...rest }) => rest))
    ok("nix-store", ["--store", fresh, "--verify", "--check-contents"])
  })

  it("nix log shows b3's build log; nix store sign adds signatures that verify", () => {
    const out = ok("nix-build", ["--store", S, nixFile, "--no-out-link"])
    const log = ok("nix", ["log", "--store", `${S}?log=${join(b3Root, "nix/var/log/nix")}`, out])
    expect(log).toContain("building hello")
    expect(log).toContain("done")
    ok("nix-store", ["--generate-binary-cache-key", "b3test-1", join(dir, "sk"), join(dir, "pk")])
    const signed = run("nix", ["store", "sign", "--store", S, "--key-file", join(dir, "sk"), out])
    expect(signed.status, signed.stderr).toBe(0)
    const sigs = JSON.parse(ok("nix", ["path-info", "--store", S, "--json", out]))[0].signatures as Array<string>
    expect(sigs.some((s) => s.startsWith("b3test-1:"))).toBe(true)
    const verify = run("nix", ["store", "verify", "--store", SR, "--trusted-public-keys", readFileSync(join(dir, "pk"), "utf8").trim(), out])
    expect(verify.status, verify.stderr).toBe(0)
  })

  it("nix-store --gc keeps what roots reach and deletes the rest; --delete refuses live paths", () => {
    const out = ok("nix-build", ["--store", S, nixFile, "-o", join(dir, "result")])
    const roots = ok("nix-store", ["--store", S, "--gc", "--print-roots"])
    expect(roots).toContain(`${join(dir, "result")} -> ${out}`)
    const live = ok("nix-store", ["--store", S, "--gc", "--print-live"]).split("\n")
    expect(live).toContain(out)
    const garbage = ok("nix-store", ["--store", S, "--add", nixFile])
    expect(ok("nix-store", ["--store", S, "--gc", "--print-dead"]).split("\n")).toContain(garbage)
    const refused = run("nix-store", ["--store", S, "--delete", out])
    expect(refused.status).not.toBe(0)
    expect(refused.stderr).toContain("still alive")
    expect(ok("nix-store", ["--store", S, "--check-validity", out])).toBe("")
    const deleted = run("nix-store", ["--store", S, "--delete", garbage])
    expect(deleted.status, deleted.stderr).toBe(0)
    expect(run("nix-store", ["--store", S, "--check-validity", garbage]).status).not.toBe(0)
    const gc = run("nix-store", ["--store", S, "--gc"])
    expect(gc.status, gc.stderr).toBe(0)
    expect(gc.stdout + gc.stderr).toMatch(/store paths deleted/)
    // what the root reaches survives, with its contents
    for (const p of ok("nix-store", ["--store", S, "-qR", out]).split("\n")) {
      expect(run("nix-store", ["--store", S, "--check-validity", p]).status).toBe(0)
    }
    expect(ok("nix-store", ["--store", S, "--verify", "--check-contents"])).toBe("")
  })

  it("nix-store --verify --check-contents passes, and reports a path whose contents changed", () => {
    const file = join(dir, "to-corrupt.txt")
    writeFileSync(file, "original\n")
    const p = ok("nix-store", ["--store", S, "--add", file])
    const clean = run("nix-store", ["--store", S, "--verify", "--check-contents"])
    expect(clean.status, clean.stderr).toBe(0)
    const physical = join(b3Root, p)
    chmodSync(physical, 0o644)
    writeFileSync(physical, "tampered\n")
    const bad = run("nix-store", ["--store", S, "--verify", "--check-contents"])
    expect(bad.status).not.toBe(0)
    expect(bad.stderr).toContain(p)
    // put it back
    writeFileSync(physical, "original\n")
    chmodSync(physical, 0o444)
    expect(run("nix-store", ["--store", S, "--verify", "--check-contents"]).status).toBe(0)
  })
})

describe("an untrusted Nix client of b3 daemon", () => {
  it("may add content-addressed and signed paths, not unsigned input-addressed ones", async () => {
    const local = Effect.runSync(Scope.make())
    try {
      const root = join(dir, "untrusted")
      ok("nix-store", ["--generate-binary-cache-key", "trusted-1", join(dir, "tsk"), join(dir, "tpk")])
      const pk = readFileSync(join(dir, "tpk"), "utf8").trim()
      const d = await Effect.runPromise(Scope.provide(local)(startB3Daemon(root, join(dir, "socket2"), ["--trust", "none", "--trusted-public-keys", pk])))
      const out = ok("nix-build", ["--store", nixRoot, nixFile, "--no-out-link"])
      const refused = run("nix", ["copy", "--no-check-sigs", "--from", nixRoot, "--to", d.uri, out])
      expect(refused.status).not.toBe(0)
      expect(refused.stderr).toContain("lacks a signature by a trusted key")
      expect(run("nix-store", ["--store", d.uri, "--check-validity", out]).status).not.toBe(0)
      // content-addressed: accepted
      const ca = ok("nix-store", ["--store", d.uri, "--add", nixFile])
      expect(ca).toBe(ok("nix-store", ["--store", nixRoot, "--add", nixFile]))
      // signed by a key the daemon trusts: accepted
      ok("nix", ["store", "sign", "--store", nixRoot, "--key-file", join(dir, "tsk"), "-r", out])
      const copied = run("nix", ["copy", "--from", nixRoot, "--to", d.uri, out])
      expect(copied.status, copied.stderr).toBe(0)
      expect(ok("nix-store", ["--store", d.uri, "--check-validity", out])).toBe("")
      // and privileged operations are refused
      ok("nix-store", ["--generate-binary-cache-key", "other-1", join(dir, "osk"), join(dir, "opk")])
      const sign = run("nix", ["store", "sign", "--store", d.uri, "--key-file", join(dir, "osk"), out])
      expect(sign.stderr).toContain("not privileged")
    } finally {
      await Effect.runPromise(Scope.close(local, Exit.void))
    }
  })
})
