/**
 * Impure derivations (`__impure = true`, Nix 2.8's impure-derivations), built by `nix build` with
 * the sandbox on and by `b3 build`, from the same `.drv` files: the builder reaches the network (an
 * HTTP server this test starts on 127.0.0.1), the output is content-addressed, it is built again
 * every time (never valid, never substituted, no realisation), impureEnvVars pass through, an
 * impure derivation may use another and a fixed-output one may use it, and a pure one may not
 * (refused with Nix's words).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { addBusybox } from "../support/busybox.ts"
import { b3Bin } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"
import { nixEnv } from "../support/nix.ts"

const env = { ...nixEnv, NIX_CONFIG: `${nixEnv.NIX_CONFIG}\nexperimental-features = nix-command ca-derivations impure-derivations`, http_proxy: "http://proxy.example:3128" }
const sha256Fixed = "04rmhy6rn9kryhm4fn2r8ihwyhf0aacl7g4vmhvdvzkibi2r6alr"

let scratch: string
let server: ChildProcess
let port = 0

/**
 * The HTTP server the builders fetch from, in a process of its own (the test's own event loop is
 * blocked while it waits for a build): `/counter` answers `response <n>`, anything else the same text.
 */
const serverScript = `
let n = 0
const server = require("node:http").createServer((req, res) => {
  const body = req.url === "/counter" ? "response " + (++n) + "\\n" : "the same every time\\n"
  res.writeHead(200, { "content-length": Buffer.byteLength(body) }).end(body)
})
server.listen(0, "127.0.0.1", () => console.log(server.address().port))`

const expression = (bb: string) => `
let
  bb = builtins.storePath ${bb};
  mk = name: script: attrs: derivation ({ inherit name; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = [ "-c" "echo BUILT-\${name} >&2; \${script}" ]; } // attrs);
  get = path: "\${bb}/bin/busybox wget -q -O $out http://127.0.0.1:${port}\${path}";
in rec {
  fixed = mk "fixed" (get "/fixed") { __impure = true; };
  counting = mk "counting" (get "/counter") { __impure = true; };
  proxy = mk "proxy" "\${bb}/bin/busybox cat \${fixed} > $out; echo \${"$"}http_proxy >> $out" { __impure = true; impureEnvVars = [ "http_proxy" ]; };
  pure = mk "pure" "\${bb}/bin/busybox cat \${fixed} > $out" {};
  fod = mk "fod" "echo -n fixed > $out; echo \${fixed} > /dev/null" { outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "${sha256Fixed}"; };
}`

const run = (cmd: string, argv: ReadonlyArray<string>) => {
  const r = spawnSync(cmd, argv, { env, maxBuffer: 1 << 28 })
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() }
}
const must = (r: { status: number; stdout: string; stderr: string }) => { if (r.status !== 0) throw new Error(r.stderr); return r }

const graph = () => join(scratch, "impure.nix")
const instantiate = (root: string, attr: string) => must(run("nix-instantiate", ["--store", root, graph(), "-A", attr])).stdout.trim()

/** `nix build DRV --json` (nix-build cannot print an impure output in 2.8): the output path. */
const nixBuild = (root: string, drv: string) => {
  const r = run("nix", ["build", "--store", root, "--option", "sandbox", "true", "--option", "substituters", "", "--no-link", "--json", drv])
  return { ...r, out: r.status === 0 ? (JSON.parse(r.stdout) as Array<{ outputs: { out: string } }>)[0]!.outputs.out : undefined }
}
const b3Build = (root: string, drv: string, extra: ReadonlyArray<string> = []) => {
  const r = run(b3Bin, ["build", "--store", `local?root=${root}`, "--json", "--print-build-logs", ...extra, drv])
  return {
    ...r,
    out: r.status === 0 ? (JSON.parse(r.stdout) as Array<{ outputs: { out: string } }>)[0]!.outputs.out : undefined,
    builds: (r.stderr.match(/> BUILT-/g) ?? []).length
  }
}
const pathInfo = (root: string, path: string) => {
  const { narHash, narSize, references, ca } = (JSON.parse(must(run("nix", ["path-info", "--store", root, "--json", path])).stdout) as
    Array<{ narHash: string; narSize: number; ca?: string; references: Array<string> }>)[0]!
  return { narHash, narSize, references, ca }
}
const cat = (root: string, path: string) => must(run("cat", [join(root, path.slice(1))])).stdout

beforeAll(async () => {
  scratch = makeScratch("b3-impure-")
  server = spawn(process.execPath, ["-e", serverScript], { stdio: ["ignore", "pipe", "inherit"] })
  port = await new Promise<number>((resolve, reject) => {
    server.stdout!.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())))
    server.once("exit", (code) => reject(new Error(`the test server exited (${code})`)))
  })
}, 60_000)
afterAll(() => {
  server.kill()
  removeScratch(scratch)
})

describe("impure derivations: b3 build vs nix build (sandbox = true)", () => {
  const nixRoot = () => join(scratch, "nix")
  const b3Root = () => join(scratch, "b3")

  it("reach the network, give a content-addressed output (Nix's path), with impureEnvVars and impure inputs", () => {
    const bb = addBusybox(nixRoot())
    expect(addBusybox(b3Root())).toBe(bb)
    writeFileSync(graph(), expression(bb))
    for (const attr of ["fixed", "proxy", "fod"]) {
      const drv = instantiate(b3Root(), attr)
      expect(instantiate(nixRoot(), attr)).toBe(drv)
      const theirs = nixBuild(nixRoot(), drv)
      const ours = b3Build(b3Root(), drv)
      expect(theirs.status, theirs.stderr).toBe(0)
      expect(ours.status, ours.stderr).toBe(0)
      expect(ours.out).toBe(theirs.out)
      expect(pathInfo(b3Root(), ours.out!)).toEqual(pathInfo(nixRoot(), theirs.out!))
    }
    const proxied = b3Build(b3Root(), instantiate(b3Root(), "proxy")).out!
    expect(cat(b3Root(), proxied)).toBe("the same every time\nhttp://proxy.example:3128\n")
    expect(pathInfo(b3Root(), b3Build(b3Root(), instantiate(b3Root(), "fixed")).out!).ca).toMatch(/^fixed:r:sha256:/)
  }, 300_000)

  it("is built every time (its output may change), records no realisation, and is never substituted", () => {
    const drv = instantiate(b3Root(), "counting")
    const first = b3Build(b3Root(), drv)
    const second = b3Build(b3Root(), drv)
    expect([first.builds, second.builds]).toEqual([1, 1])
    expect(first.out).not.toBe(second.out)
    const [one, two] = [cat(b3Root(), first.out!), cat(b3Root(), second.out!)]
    expect(one).toMatch(/^response \d+\n$/)
    expect(Number(two.slice(9))).toBe(Number(one.slice(9)) + 1)
    // Nix too builds it again each time.
    instantiate(nixRoot(), "counting")
    const n1 = nixBuild(nixRoot(), drv)
    const n2 = nixBuild(nixRoot(), drv)
    expect(n1.out).not.toBe(n2.out)
    const db = new DatabaseSync(join(b3Root(), "nix/var/nix/db/db.sqlite"), { readOnly: true })
    const rows = db.prepare("select count(*) as n from Realisations r join ValidPaths v on v.id = r.outputPath where v.path in (?, ?)").get(first.out!, second.out!) as { n: number }
    db.close()
    expect(rows.n).toBe(0)
    // A cache holding its last output does not stand in for it.
    const cache = `file://${join(scratch, "cache")}?compression=none`
    must(run(b3Bin, ["copy", "--no-check-sigs", "--from", `local?root=${b3Root()}`, "--to", cache, second.out!]))
    const third = b3Build(b3Root(), drv, ["--substituters", cache])
    expect(third.builds).toBe(1)
  }, 300_000)

  it("a pure derivation that depends on one is refused, in Nix's words", () => {
    const drv = instantiate(b3Root(), "pure")
    instantiate(nixRoot(), "pure")
    const theirs = nixBuild(nixRoot(), drv)
    const ours = b3Build(b3Root(), drv)
    expect(theirs.status).not.toBe(0)
    expect(ours.status).toBe(5)
    const message = /pure derivation '\S+' depends on impure derivation '\S+'/.exec(theirs.stderr)![0]
    expect(ours.stderr).toContain(message)
  }, 120_000)
})
