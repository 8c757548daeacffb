/**
 * What every command shares: `--help` with examples, shell completion, the global --json /
 * --quiet / --verbose flags (anywhere on the command line), JSON shapes, and one-line errors
 * whose exit code says what went wrong (2 bad input, 3 not found, 4 mismatch, 5 build failed).
 */
import { afterAll, describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3, b3Bin, runB3 } from "../support/b3.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

/** Every command path, found by walking the SUBCOMMANDS sections of the help pages. */
const allCommands = (path: ReadonlyArray<string> = []): Array<ReadonlyArray<string>> => {
  const help = b3([...path, "--help"])
  const section = /\nSUBCOMMANDS\n([\s\S]*?)(\n\n|\nEXAMPLES|$)/.exec(help)?.[1] ?? ""
  const subcommands = section.split("\n").map((line) => /^ {2}(\S+)/.exec(line)?.[1]).filter((name): name is string => name !== undefined)
  return [path, ...subcommands.flatMap((name) => allCommands([...path, name]))]
}

const oneLineError = (result: { stderr: string }) => {
  expect(result.stderr).toMatch(/^b3: [^\n]+\n$/)
  expect(result.stderr).not.toMatch(/\n\s+at /)
}

const zeroPath = "/nix/store/00000000000000000000000000000000-x"
const emptySha256 = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

describe("b3 CLI: shared behaviour", () => {
  it("every command's --help exits 0, shows an example and the global flags", () => {
    const commands = allCommands()
    expect(commands.map((c) => c.join(" "))).toEqual(expect.arrayContaining(["", "run", "store add", "hash convert", "nar restore", "config show"]))
    for (const command of commands) {
      const result = runB3([...command, "--help"])
      const name = `b3 ${command.join(" ")}`
      expect(result.status, name).toBe(0)
      expect(result.stdout, name).toMatch(/USAGE/)
      expect(result.stdout, name).toMatch(/--json\s.*\n\s+--quiet, -q\s.*\n\s+--verbose\s/)
      expect(result.stdout, name).toMatch(/\nEXAMPLES\n {2}# .*\n {2}.*\bb3 /)
    }
  }, 300_000)

  it("prints shell completion scripts for bash, zsh and fish", () => {
    for (const shell of ["bash", "zsh", "fish"]) {
      const result = runB3(["--completions", shell])
      expect(result.status, shell).toBe(0)
      for (const command of ["path-info", "copy", "run", "store"]) expect(result.stdout, shell).toContain(command)
    }
  })

  it("--json works before or after the command, and --json output has the documented shapes", () => {
    const file = join(scratch, "empty")
    writeFileSync(file, "")
    const before = JSON.parse(b3(["--json", "hash", "file", file]))
    const after = JSON.parse(b3(["hash", "file", file, "--json"]))
    expect(before).toEqual({ path: file, hash: emptySha256 })
    expect(after).toEqual(before)
    expect(JSON.parse(b3(["hash", "convert", "--json", "--to", "base32", emptySha256])))
      .toEqual({ input: emptySha256, hash: `sha256:${nix("nix", ["hash", "to-base32", emptySha256])}` })
    expect(JSON.parse(b3(["hash", "path", "--json", file]))).toEqual({ path: file, hash: nix("nix", ["hash", "path", file]) })
    expect(JSON.parse(b3(["store-path", "fixed", "--json", "--name", "empty", emptySha256])))
      .toEqual({ path: nix("nix-store", ["--store", join(scratch, "nix-store"), "--add-fixed", "sha256", file]) })
    const textPath = JSON.parse(b3(["store-path", "text", "--json", "--name", "empty", file])) as { path: string }
    expect(textPath.path).toMatch(/^\/nix\/store\/[0-9a-z]{32}-empty$/)

    const secret = join(scratch, "k.sec")
    const pub = join(scratch, "k.pub")
    const key = JSON.parse(b3(["key", "generate", "--json", "--name", "json-1", "--secret", secret, "--public", pub]))
    expect(key).toEqual({ name: "json-1", publicKey: expect.stringMatching(/^json-1:[A-Za-z0-9+/]{43}=$/), secretKeyFile: secret, publicKeyFile: pub })
    expect(JSON.parse(b3(["key", "public", "--json", secret]))).toEqual({ publicKey: key.publicKey })

    const restored = join(scratch, "restored")
    expect(JSON.parse(b3(["nar", "restore", "--json", restored], { input: nixBytes("nix-store", ["--dump", file]) }))).toEqual({ path: restored })

    // A file cache with one signed path: narinfo sign/verify, copy events and result.
    const cache = join(scratch, "cache")
    const copy = runB3(["copy", "--json", "--from", "memory://", "--to", `file://${cache}`, zeroPath])
    expect(copy.status).toBe(3) // nothing in memory:// (each run is a fresh one)
    const root = join(scratch, "store")
    const added = JSON.parse(b3(["store", "add", "--json", "--store", root, file])) as { path: string }
    const events = b3(["copy", "--json", "--from", root, "--to", `file://${cache}`, "--no-check-sigs", added.path]).split("\n").map((l) => JSON.parse(l))
    expect(events.map((e) => e.type)).toEqual(["plan", "start", "done", "result"])
    expect(events[3]).toEqual({ type: "result", copied: [added.path], skipped: [] })
    const narinfo = join(cache, `${added.path.slice("/nix/store/".length, "/nix/store/".length + 32)}.narinfo`)
    expect(JSON.parse(b3(["narinfo", "sign", "--json", "--key-file", secret, narinfo]))).toEqual({ signed: [narinfo] })
    expect(JSON.parse(b3(["narinfo", "verify", "--json", "--trusted-key", key.publicKey, narinfo]))).toEqual({ file: narinfo, trustedKey: "json-1" })

    expect(JSON.parse(b3(["store", "verify", "--json", "--store", root]))).toEqual({ checked: 1, problems: [] })
    const drv = join(scratch, "json.drv")
    writeFileSync(drv, 'Derive([("out","/nix/store/4xw8n979xpivdc46a9ndcvyhwgif00hz-json","","")],[],[],"x86_64-linux","/bin/sh",[],[("builder","/bin/sh"),("name","json"),("out","/nix/store/4xw8n979xpivdc46a9ndcvyhwgif00hz-json"),("system","x86_64-linux")])')
    expect(JSON.parse(b3(["drv", "hash", "--json", drv]))).toEqual({ out: expect.stringMatching(/^[0-9a-f]{64}$/) })

    const config = JSON.parse(b3(["config", "show", "--json"])) as Record<string, unknown>
    expect(Object.keys(config)).toEqual(expect.arrayContaining(["store", "substituters", "trustedPublicKeys", "sources", "problems"]))
  })

  it("serve --json prints {store, url} once it listens; Ctrl-C stops it with exit 130", async () => {
    const child = spawn(b3Bin, ["serve", "--json", "--quiet", "--store", "memory://", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    const line = await new Promise<string>((resolve) => child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.includes("\n")) resolve(stdout.slice(0, stdout.indexOf("\n")))
    }))
    const served = JSON.parse(line) as { store: string; url: string }
    expect(served).toEqual({ store: "memory://", url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) })
    expect((await fetch(`${served.url}/nix-cache-info`)).status).toBe(200)
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    child.kill("SIGINT")
    expect(await exited).toBe(130)
  })

  it("commands whose output is raw data refuse --json (exit 2, one line)", () => {
    const file = join(scratch, "raw")
    writeFileSync(file, "raw\n")
    for (const args of [["nar", "dump", file], ["log", "--store", "memory://", zeroPath]]) {
      const result = runB3(["--json", ...args])
      expect(result.status, args.join(" ")).toBe(2)
      oneLineError(result)
      expect(result.stderr).toMatch(/has no JSON form; leave out --json/)
    }
  })

  it("--quiet drops summaries and the access log, --verbose adds per-path lines", () => {
    const dir = join(scratch, "q")
    mkdirSync(dir)
    writeFileSync(join(dir, "f"), "q")
    const root = join(scratch, "q-store")
    const path = b3(["store", "add", "--store", root, dir])
    const to = join(scratch, "q-to")
    const verbose = runB3(["copy", "--verbose", "--from", root, "--to", to, path])
    expect(verbose.stderr).toBe(`copying ${path} (0.0 MiB)\ncopied 1 path(s), 0 already present\n`)
    const quiet = runB3(["copy", "-q", "--from", root, "--to", join(scratch, "q-to-2"), path])
    expect(quiet).toMatchObject({ status: 0, stdout: "", stderr: "" })
    const gc = runB3(["store", "gc", "--quiet", "--dry-run", "--store", root])
    expect(gc).toMatchObject({ status: 0, stdout: `would delete ${path}\n`, stderr: "" })
  })

  it("bad arguments: one line that says what is wrong, and the exit code for it", () => {
    const cases: Array<[ReadonlyArray<string>, number, RegExp]> = [
      [["path-info", "--store", "ftp://example", zeroPath], 2, /unknown store type 'ftp' \(known: .*local.*\)/],
      [["path-info", "--store", "memory://", "/nix/store/not-a-store-path"], 2, /not-a-store-path/],
      [["hash", "convert", "--to", "base32", "sha256:xyz"], 2, /a sha256 digest has 64 \(base16\), 52 \(nix-base32\) or 44 \(base64\) characters/],
      [["store-path", "fixed", "--name", "x", "notahash"], 2, /write it as 'sha256:…' or SRI 'sha256-…'/],
      [["hash", "file", join(scratch, "missing")], 3, /missing: no such file or directory/],
      [["drv", "show", join(scratch, "missing.drv")], 3, /path '[^']*missing\.drv' does not exist/],
      [["run", join(scratch, "missing.ts")], 3, /missing\.ts' does not exist/],
      [["path-info", "--store", "memory://", zeroPath], 3, /is not valid in store memory:\/\//],
      [["serve", "--listen", "nowhere"], 2, /--listen takes HOST:PORT, e.g. 127.0.0.1:5000/],
      [["path-info", "--bogus", zeroPath], 2, /Unrecognized flag: --bogus .*see 'b3 path-info --help'/],
      [["no-such-command"], 2, /see 'b3 --help'/]
    ]
    for (const [args, code, message] of cases) {
      const result = runB3(args)
      expect(result.status, args.join(" ")).toBe(code)
      oneLineError(result)
      expect(result.stderr, args.join(" ")).toMatch(message)
    }
  })
})
