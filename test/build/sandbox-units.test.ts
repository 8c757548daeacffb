/**
 * The sandbox's pure parts: the builder environment (Nix's initEnv rules), the log tail, choosing
 * the build user, the chroot description, bubblewrap's arguments, and canonicalisation.
 */
import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { chmodSync, lstatSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { builderEnvironment, buildUserCandidates, canonicalise, passAsFileName } from "../../src/layers/sandbox/index.ts"
import { bwrapArguments } from "../../src/layers/sandbox/command.ts"
import { skeleton } from "../../src/layers/sandbox/chroot.ts"
import { makeLogTail } from "../../src/layers/sandbox/log-tail.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const base = {
  storeDir: "/nix/store", cores: 4, fixedOutput: false, hostBuildDir: "/tmp/nix-build-x.drv-0", hostEnv: {}
}

describe("builder environment", () => {
  it("is Nix's fixed variables plus the derivation's, sorted byte-wise by name", () => {
    const { variables, files } = builderEnvironment({ ...base, env: { out: "/nix/store/o", "é": "1", a: "2", Z: "3" } })
    expect(variables).toEqual([
      ["HOME", "/homeless-shelter"], ["NIX_BUILD_CORES", "4"], ["NIX_BUILD_TOP", "/build"], ["NIX_LOG_FD", "2"],
      ["NIX_STORE", "/nix/store"], ["PATH", "/path-not-set"], ["PWD", "/build"], ["TEMP", "/build"],
      ["TEMPDIR", "/build"], ["TERM", "xterm-256color"], ["TMP", "/build"], ["TMPDIR", "/build"],
      ["Z", "3"], ["a", "2"], ["out", "/nix/store/o"], ["é", "1"]
    ])
    expect(files).toEqual([])
  })

  it("lets the derivation override PATH, HOME, NIX_STORE and NIX_BUILD_CORES, but not the build dir, log fd or TERM", () => {
    const env = Object.fromEntries(builderEnvironment({ ...base, env: {
      PATH: "p", HOME: "h", NIX_STORE: "s", NIX_BUILD_CORES: "c", TMPDIR: "t", PWD: "w", NIX_LOG_FD: "9", TERM: "dumb"
    } }).variables)
    expect(env).toMatchObject({ PATH: "p", HOME: "h", NIX_STORE: "s", NIX_BUILD_CORES: "c" })
    expect(env).toMatchObject({ TMPDIR: "/build", PWD: "/build", NIX_LOG_FD: "2", TERM: "xterm-256color" })
  })

  it("passes passAsFile attributes as /build/.attr-<nix-base32 sha256 of the name> files", () => {
    // The name Nix 2.8 gave attribute "big" in a real build (see sandbox-nix.test.ts).
    expect(passAsFileName("big")).toBe(".attr-1lak0mvllw8rv9i9ygkglvhqsq19qi9ynl4bi7gbf69ab5nzw89a")
    const { variables, files } = builderEnvironment({ ...base, env: { passAsFile: " big\tother\n", big: "B", other: "O", x: "X" } })
    const env = Object.fromEntries(variables)
    expect(env["big"]).toBeUndefined()
    expect(env["bigPath"]).toBe("/build/.attr-1lak0mvllw8rv9i9ygkglvhqsq19qi9ynl4bi7gbf69ab5nzw89a")
    expect(env["passAsFile"]).toBe(" big\tother\n")
    expect(files).toEqual([{ name: passAsFileName("big"), contents: "B" }, { name: passAsFileName("other"), contents: "O" }])
  })

  it("with structured attrs passes no derivation variables, writes .attrs.{sh,json} and points NIX_ATTRS_* at the host build dir", () => {
    const { variables, files } = builderEnvironment({ ...base, env: { __json: "{}", out: "/nix/store/o" }, structuredAttrs: { json: "J", sh: "S" } })
    const env = Object.fromEntries(variables)
    expect(env["__json"]).toBeUndefined()
    expect(env["out"]).toBeUndefined()
    expect(env["NIX_ATTRS_JSON_FILE"]).toBe("/tmp/nix-build-x.drv-0/.attrs.json")
    expect(env["NIX_ATTRS_SH_FILE"]).toBe("/tmp/nix-build-x.drv-0/.attrs.sh")
    expect(files).toEqual([{ name: ".attrs.sh", contents: "S" }, { name: ".attrs.json", contents: "J" }])
  })

  it("gives fixed-output derivations NIX_OUTPUT_CHECKED and their impureEnvVars from the host (empty when unset)", () => {
    const hostEnv = { http_proxy: "http://proxy", HOME: "/root" }
    const plain = Object.fromEntries(builderEnvironment({ ...base, fixedOutput: true, hostEnv, env: { impureEnvVars: "http_proxy  ftp_proxy" } }).variables)
    expect(plain).toMatchObject({ NIX_OUTPUT_CHECKED: "1", http_proxy: "http://proxy", ftp_proxy: "" })
    const structured = Object.fromEntries(builderEnvironment({
      ...base, fixedOutput: true, hostEnv, env: {},
      structuredAttrs: { json: JSON.stringify({ impureEnvVars: ["http_proxy"] }), sh: "" }
    }).variables)
    expect(structured).toMatchObject({ NIX_OUTPUT_CHECKED: "1", http_proxy: "http://proxy" })
    const sandboxed = Object.fromEntries(builderEnvironment({ ...base, hostEnv, env: { impureEnvVars: "http_proxy" } }).variables)
    expect(sandboxed["http_proxy"]).toBeUndefined()
    expect(sandboxed["NIX_OUTPUT_CHECKED"]).toBeUndefined()
  })
})

describe("log tail", () => {
  it("holds the last 25 lines of the log however it is chunked (UTF-8 split anywhere)", () => {
    const line = fc.string({ unit: fc.constantFrom("a", "é", "😀", " ", "\t"), maxLength: 30 })
    fc.assert(fc.property(fc.array(line, { maxLength: 60 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 10 }), (lines, endsWithNewline, cuts) => {
      const text = lines.join("\n") + (endsWithNewline && lines.length > 0 ? "\n" : "")
      const bytes = new TextEncoder().encode(text)
      const tail = makeLogTail()
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
      let start = 0
      for (const point of [...points, bytes.length]) { tail.push(bytes.subarray(start, point)); start = point }
      const pieces = text.split("\n")
      if (pieces[pieces.length - 1] === "") pieces.pop()
      expect(tail.text()).toBe(pieces.slice(-25).join("\n"))
    }))
  })

  it("keeps memory bounded: long lines are clipped", () => {
    const tail = makeLogTail(2, 10)
    tail.push(new TextEncoder().encode("x".repeat(100000) + "\nshort\n" + "y".repeat(50)))
    expect(tail.text()).toBe("short\n" + "y".repeat(10) + "…")
  })
})

describe("build users", () => {
  const passwd = "root:x:0:0:root:/root:/bin/bash\nbroken line\nnixbld2:x:998:994::/var/empty:/usr/sbin/nologin\n" +
    "nixbld1:x:999:994:Nix build user 1:/var/empty:/usr/sbin/nologin\nb3bld:x:990:990::/var/empty:/usr/sbin/nologin\n"
  const group = "root:x:0:\nnixbld:x:994:nixbld1,nixbld2,ghost\nb3bld:x:990:\n"
  it("are the members of group nixbld in the group's order, with its gid and Nix's user-pool lock files", () => {
    expect(buildUserCandidates(passwd, group)).toEqual([
      { name: "nixbld1", uid: 999, gid: 994, lockFile: "/nix/var/nix/userpool/999" },
      { name: "nixbld2", uid: 998, gid: 994, lockFile: "/nix/var/nix/userpool/998" }
    ])
  })
  it("are b3bld (no lock) without Nix's, and nothing when neither exists", () => {
    expect(buildUserCandidates(passwd, "root:x:0:\nb3bld:x:990:\n")).toEqual([{ name: "b3bld", uid: 990, gid: 990 }])
    expect(buildUserCandidates("root:x:0:0::/root:/bin/sh\n", "root:x:0:\nnixbld:x:994:\n")).toEqual([])
  })
})

describe("chroot and bubblewrap arguments", () => {
  const options = {
    storeDir: "/gnu/store", buildDir: "/build", fixedOutput: false, devPts: true,
    inputs: [{ path: "/gnu/store/a-dir", isDirectory: true, realPath: "/real/a-dir" }, { path: "/gnu/store/b-file", isDirectory: false, realPath: "/real/b-file" }],
    devices: ["/dev/null"], hostFiles: []
  }
  it("describes Nix's chroot: modes, /etc files, the store with mount points or links for inputs", () => {
    const entries = skeleton(options)
    const byPath = Object.fromEntries(entries.map((e) => [e.path, e]))
    expect(byPath["/"]).toEqual({ kind: "dir", path: "/", mode: 0o750, buildGroup: true })
    expect(byPath["/tmp"]).toMatchObject({ mode: 0o1777 })
    expect(byPath["/gnu"]).toMatchObject({ kind: "dir", mode: 0o755 })
    expect(byPath["/gnu/store"]).toMatchObject({ mode: 0o1775, buildGroup: true })
    expect(byPath["/gnu/store/a-dir"]).toMatchObject({ kind: "dir" })
    expect(byPath["/gnu/store/b-file"]).toEqual({ kind: "link", path: "/gnu/store/b-file", source: "/real/b-file" })
    expect(byPath["/etc/hosts"]).toMatchObject({ contents: "127.0.0.1 localhost\n::1 localhost\n" })
    expect(byPath["/etc/nsswitch.conf"]).toBeUndefined()
    expect(byPath["/dev/ptmx"]).toEqual({ kind: "symlink", path: "/dev/ptmx", target: "/dev/pts/ptmx" })
    // a path is created after its parent
    const order = entries.map((e) => e.path)
    for (const [i, path] of order.entries()) {
      const parent = path.slice(0, path.lastIndexOf("/")) || "/"
      if (path !== "/") expect(order.indexOf(parent)).toBeLessThan(i)
    }
  })

  it("gives fixed-output derivations nsswitch.conf and the host's files instead of /etc/hosts, and the host network", () => {
    const byPath = Object.fromEntries(skeleton({ ...options, fixedOutput: true, hostFiles: ["/etc/resolv.conf", "/etc/hosts"] }).map((e) => [e.path, e]))
    expect(byPath["/etc/nsswitch.conf"]).toMatchObject({ contents: "hosts: files dns\nservices: files\n" })
    expect(byPath["/etc/hosts"]).toMatchObject({ kind: "file", contents: "" }) // a mount point
    const args = (fixedOutput: boolean) => bwrapArguments({
      rootDir: "/w/root", chrootStore: "/w/root/gnu/store", storeDir: "/gnu/store", hostBuildDir: "/tmp/nix-build-x.drv-0", storeMount: "/w/store",
      directoryInputs: ["/gnu/store/a-dir"], devices: ["/dev/null"], fixedOutput, hostFiles: ["/etc/hosts"], env: [["A", "1"]]
    })
    expect(args(false)).toContain("--unshare-net")
    expect(args(true)).not.toContain("--unshare-net")
    expect(args(true).join(" ")).toContain("--ro-bind /etc/hosts /etc/hosts")
    expect(args(false).join(" ")).toContain("--ro-bind /w/store/a-dir /gnu/store/a-dir")
    expect(args(false).join(" ")).toContain("--clearenv --setenv A 1 --seccomp 6 --json-status-fd 8")
  })
})

describe("canonicalise", () => {
  it("gives everything mtime 1, 0444/0555 by the owner's x bit, and keeps symlinks", async () => {
    const scratch = makeScratch()
    try {
      const root = join(scratch, "out")
      mkdirSync(join(root, "dir"), { recursive: true })
      writeFileSync(join(root, "plain"), "p")
      writeFileSync(join(root, "dir/tool"), "t")
      chmodSync(join(root, "dir/tool"), 0o4711)
      writeFileSync(join(root, "dir/others-x"), "o")
      chmodSync(join(root, "dir/others-x"), 0o645)
      symlinkSync("plain", join(root, "link"))
      mkdirSync(join(root, "no-x-dir"))
      chmodSync(join(root, "no-x-dir"), 0o600)
      await Effect.runPromise(canonicalise(root))
      const mode = (p: string) => lstatSync(join(root, p)).mode & 0o7777
      expect([mode(""), mode("plain"), mode("dir"), mode("dir/tool"), mode("dir/others-x"), mode("no-x-dir")])
        .toEqual([0o555, 0o444, 0o555, 0o555, 0o444, 0o444])
      for (const p of ["", "plain", "dir", "dir/tool", "link", "no-x-dir"]) expect(lstatSync(join(root, p)).mtimeMs).toBe(1000)
      expect(lstatSync(join(root, "link")).isSymbolicLink()).toBe(true)
    } finally {
      removeScratch(scratch)
    }
  })
})
