/**
 * Nix's built-in builders, built by `nix-build` with the sandbox on and by `b3 build` from the same
 * `.drv` files, as a table of cases:
 *
 * - `builtin:fetchurl` (the derivation `<nix/fetchurl.nix>` makes) against an HTTP server the test
 *   starts: a flat file, a redirect, an executable, a NAR unpacked (plain and .xz), a file found only
 *   on a hashed mirror, a wrong hash and a 404 — the same output paths and NAR hashes, the same
 *   failures;
 * - `builtin:buildenv`: a profile from packages with a collision decided by priority, propagated
 *   packages, a dangling link and a hidden file — the same tree; two packages of one priority
 *   colliding fail with Nix's message.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Result } from "effect"
import * as Hash from "../../src/core/hash.ts"
import * as Tree from "../../src/nar/tree.ts"
import { addBusybox } from "../support/busybox.ts"
import { b3Bin } from "../support/b3.ts"
import { startFileServer, type FileServer } from "../support/file-server.ts"
import { makeScratch, nixEnv, removeScratch } from "../support/nix.ts"

let scratch: string
let files: string
let server: FileServer
let bb: string

const run = (cmd: string, argv: ReadonlyArray<string>) => {
  const r = spawnSync(cmd, argv, { env: nixEnv, maxBuffer: 1 << 28 })
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() }
}
const must = (r: { status: number; stdout: string; stderr: string }) => { if (r.status !== 0) throw new Error(r.stderr); return r }
const sha256 = (bytes: Uint8Array | string) => Hash.encode(Hash.hashBytes("sha256", bytes), "base32")

const textFile = "hello from the test server\n"
const toolFile = "#!/bin/sh\necho tool\n"
const tree = Tree.directory({ "a.txt": Tree.regular("a\n"), sub: Tree.directory({ run: Tree.regular("#!x\n", true) }), link: Tree.symlink("a.txt") })
const treeNar = Result.getOrThrow(Tree.toNar(tree))

interface FetchCase {
  readonly title: string
  readonly name: string
  readonly path: string
  readonly hash: string
  readonly executable?: boolean
  readonly unpack?: boolean
  /** The result: the same output as Nix's, or both fail with this in their messages. */
  readonly fails?: (url: string) => string
  readonly mirrored?: boolean
}

const fetchCases: ReadonlyArray<FetchCase> = [
  { title: "a flat file", name: "file.txt", path: "/file.txt", hash: sha256(textFile) },
  { title: "a redirect", name: "redirected.txt", path: "/redirect/file.txt", hash: sha256(textFile) },
  { title: "an executable", name: "tool", path: "/tool.sh", hash: sha256(Result.getOrThrow(Tree.toNar(Tree.regular(toolFile, true)))), executable: true },
  { title: "a NAR, unpacked", name: "tree", path: "/tree.nar", hash: sha256(treeNar), unpack: true },
  { title: "an xz-compressed NAR, unpacked", name: "tree-xz", path: "/tree.nar.xz", hash: sha256(treeNar), unpack: true },
  { title: "a file only a hashed mirror has", name: "mirrored.txt", path: "/gone/mirrored.txt", hash: sha256("only on the mirror\n"), mirrored: true },
  {
    title: "a wrong hash", name: "wrong.txt", path: "/file.txt", hash: sha256("something else"),
    fails: () => "hash mismatch in fixed-output derivation"
  },
  { title: "a 404", name: "nope.txt", path: "/nope.txt", hash: sha256("x"), fails: (url) => `unable to download '${url}': HTTP error 404` }
]

const nixString = (s: string) => JSON.stringify(s).replaceAll("$", "\\$")

/** The derivation `<nix/fetchurl.nix>` (Nix 2.8) makes, written out (Debian's nix has no corepkgs). */
const fetchurlExpr = (c: FetchCase) => `derivation {
  builder = "builtin:fetchurl";
  outputHashAlgo = "sha256"; outputHash = "${c.hash}";
  outputHashMode = ${c.unpack || c.executable ? `"recursive"` : `"flat"`};
  name = ${nixString(c.name)}; url = ${nixString(server.url + c.path)};
  executable = ${c.executable ? "true" : "false"}; unpack = ${c.unpack ? "true" : "false"};
  system = "builtin"; preferLocalBuild = true;
  impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
  urls = [ ${nixString(server.url + c.path)} ];
}`

const buildenvExpr = (bbPath: string) => `
let
  bb = builtins.storePath ${bbPath};
  mk = name: script: derivation { inherit name; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = [ "-c" script ]; };
  B = "\${bb}/bin/busybox";
  c = mk "c" "\${B} mkdir -p $out/bin; echo c > $out/bin/c";
  a = mk "a" "\${B} mkdir -p $out/bin $out/share/doc/a $out/nix-support; echo a > $out/bin/a; echo common-a > $out/bin/common; echo \${c} > $out/nix-support/propagated-user-env-packages; \${B} ln -s /nonexistent $out/bin/dangling; echo > $out/.hidden";
  b = mk "b" "\${B} mkdir -p $out/bin $out/share/doc/b; echo b > $out/bin/b; echo common-b > $out/bin/common; \${B} ln -s \${c}/bin $out/cbin";
  manifest = builtins.toFile "manifest" "[]";
in {
  env = derivation { name = "env"; system = "builtin"; builder = "builtin:buildenv"; derivations = "true 5 1 \${a} true 6 1 \${b} false 1 1 \${c}"; inherit manifest; };
  clash = derivation { name = "clash"; system = "builtin"; builder = "builtin:buildenv"; derivations = "true 5 1 \${a} true 5 1 \${b}"; inherit manifest; };
}`

beforeAll(async () => {
  scratch = makeScratch("b3-builtins-")
  files = join(scratch, "files")
  mkdirSync(join(files, "mirror", "sha256"), { recursive: true })
  writeFileSync(join(files, "file.txt"), textFile)
  writeFileSync(join(files, "tool.sh"), toolFile)
  writeFileSync(join(files, "tree.nar"), treeNar)
  writeFileSync(join(files, "tree.nar.xz"), spawnSync("xz", ["-c"], { input: treeNar }).stdout)
  writeFileSync(join(files, "mirror", "sha256", Hash.encode(Hash.hashBytes("sha256", "only on the mirror\n"), "base16")), "only on the mirror\n")
  server = await startFileServer(files)
  bb = addBusybox(join(scratch, "nix"))
  expect(addBusybox(join(scratch, "b3"))).toBe(bb)
}, 60_000)
afterAll(() => {
  server.close()
  removeScratch(scratch)
})

const nixRoot = () => join(scratch, "nix")
const b3Root = () => join(scratch, "b3")
const instantiate = (root: string, file: string, attr?: string) =>
  must(run("nix-instantiate", ["--store", root, file, ...(attr ? ["-A", attr] : [])])).stdout.trim()
const nixBuild = (file: string, attr: string | undefined, extra: ReadonlyArray<string> = []) =>
  run("nix-build", ["--store", nixRoot(), file, ...(attr ? ["-A", attr] : []), "--no-out-link", "--option", "sandbox", "true", "--option", "substituters", "", ...extra])
const b3Build = (drv: string, extra: ReadonlyArray<string> = []) => run(b3Bin, ["build", "--store", `local?root=${b3Root()}`, ...extra, drv])
const narHash = (root: string, path: string) =>
  (JSON.parse(must(run("nix", ["path-info", "--store", root, "--json", path])).stdout) as Array<{ narHash: string }>)[0]!.narHash

describe("builtin:fetchurl: b3 build vs nix-build (sandbox = true)", () => {
  it.each(fetchCases.map((c) => [c.title, c] as const))("%s", (_, c) => {
    const file = join(scratch, `${c.name}.nix`)
    writeFileSync(file, fetchurlExpr(c))
    const drv = instantiate(b3Root(), file)
    expect(instantiate(nixRoot(), file)).toBe(drv)
    const mirror = c.mirrored ? [`${server.url}/mirror`] : []
    const theirs = nixBuild(file, undefined, mirror.length ? ["--option", "hashed-mirrors", mirror.join(" ")] : [])
    const ours = b3Build(drv, mirror.length ? ["--hashed-mirrors", mirror.join(" ")] : [])
    if (c.fails) {
      const url = server.url + c.path
      expect(theirs.status).not.toBe(0)
      expect(ours.status).not.toBe(0)
      expect(theirs.stderr).toContain(c.fails(url))
      expect(ours.stderr).toContain(c.fails(url))
      return
    }
    expect(theirs.status, theirs.stderr).toBe(0)
    expect(ours.status, ours.stderr).toBe(0)
    const out = ours.stdout.trim()
    expect(out).toBe(theirs.stdout.trim())
    expect(narHash(b3Root(), out)).toBe(narHash(nixRoot(), out))
  }, 120_000)
})

describe("builtin:buildenv: b3 build vs nix-build (sandbox = true)", () => {
  it("makes the same profile: priorities, propagated packages, dangling links and hidden files as Nix", () => {
    const file = join(scratch, "env.nix")
    writeFileSync(file, buildenvExpr(bb))
    const drv = instantiate(b3Root(), file, "env")
    expect(instantiate(nixRoot(), file, "env")).toBe(drv)
    const theirs = nixBuild(file, "env")
    expect(theirs.status, theirs.stderr).toBe(0)
    // The packages themselves are built by b3 too (they are inputs).
    const ours = b3Build(drv)
    expect(ours.status, ours.stderr).toBe(0)
    const out = ours.stdout.trim()
    expect(out).toBe(theirs.stdout.trim())
    expect(narHash(b3Root(), out)).toBe(narHash(nixRoot(), out))
    expect(ours.stderr + theirs.stderr).toContain("skipping dangling symlink")
  }, 180_000)

  it("fails on two packages of one priority with Nix's message", () => {
    const file = join(scratch, "env.nix")
    const drv = instantiate(b3Root(), file, "clash")
    instantiate(nixRoot(), file, "clash")
    const theirs = nixBuild(file, "clash")
    const ours = b3Build(drv)
    expect(theirs.status).not.toBe(0)
    expect(ours.status).toBe(5)
    const message = /packages '.*' and '.*' have the same priority 5; use .* \(0 being the highest priority\)/.exec(theirs.stderr)![0]
    expect(ours.stderr).toContain(message)
  }, 120_000)
})
