/**
 * bin/b3 starts the CLI from a V8 startup snapshot (dist/b3.blob, see src/cli/snapshot-entry.ts) whose
 * heap was made once, when the bundle was built. These tests run the blob the way bin/b3 does and check
 * that a run sees its own arguments, environment and working directory, none of the build's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { b3 } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))
const node = join(root, "node_modules/.bin/node")
const blob = join(root, "dist/b3.blob")
const bundle = join(root, "dist/b3.mjs")

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

/** `node --snapshot-blob dist/b3.blob -- ARGS…` (as bin/b3 runs it) in `cwd`, with only `env`. */
const fromSnapshot = (args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) => {
  const result = spawnSync(node, ["--snapshot-blob", blob, "--", ...args], { cwd, env, encoding: "utf8" })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}
const fromBundle = (args: ReadonlyArray<string>) => spawnSync(node, [bundle, ...args], { encoding: "utf8" }).stdout

beforeAll(() => {
  b3(["--version"]) // builds the bundle and the blob if the sources changed
})

describe("b3 CLI: the startup snapshot", () => {
  it("is built with the bundle, and bin/b3 starts from it", () => {
    expect(existsSync(blob)).toBe(true)
    expect(statSync(blob).mtimeMs).toBeGreaterThanOrEqual(statSync(bundle).mtimeMs)
    const home = join(scratch, "empty-home")
    mkdirSync(home, { recursive: true })
    // --version and --help are b3's, not Node's
    expect(fromSnapshot(["--version"], scratch, { HOME: home }).stdout).toBe("b3 v0.1.0\n")
    expect(fromSnapshot(["hash", "--help"], scratch, { HOME: home }).stdout).toMatch(/^DESCRIPTION\n/)
  })

  it("reads the configuration of the run: its cwd, HOME, XDG_CONFIG_HOME and B3_* variables", () => {
    const home = join(scratch, "home")
    const xdg = join(scratch, "xdg")
    const project = join(scratch, "project")
    const elsewhere = join(scratch, "elsewhere")
    for (const dir of [join(home, ".config/b3"), join(xdg, "b3"), project, elsewhere]) mkdirSync(dir, { recursive: true })
    writeFileSync(join(home, ".config/b3/config.json"), JSON.stringify({ store: "memory://?from=home" }))
    writeFileSync(join(xdg, "b3/config.json"), JSON.stringify({ store: "memory://?from=xdg" }))
    writeFileSync(join(project, "b3.json"), JSON.stringify({ substituters: ["file:///from-cwd"] }))
    const show = (cwd: string, env: NodeJS.ProcessEnv) => {
      const result = fromSnapshot(["config", "show", "--json"], cwd, env)
      expect(result.stderr).toBe("")
      return JSON.parse(result.stdout) as { store: string; substituters: Array<string>; trustedPublicKeys: Array<string>; file?: string }
    }
    expect(show(elsewhere, { HOME: home })).toMatchObject({ store: "memory://?from=home", file: join(home, ".config/b3/config.json") })
    expect(show(elsewhere, { HOME: home, XDG_CONFIG_HOME: xdg })).toMatchObject({ store: "memory://?from=xdg" })
    expect(show(project, { HOME: home })).toMatchObject({ substituters: ["file:///from-cwd"], file: join(project, "b3.json") })
    expect(show(elsewhere, { HOME: home, B3_STORE: "memory://?from=env", B3_TRUSTED_PUBLIC_KEYS: "k:AAAA" }))
      .toMatchObject({ store: "memory://?from=env", trustedPublicKeys: ["k:AAAA"] })
  })

  it("takes flag defaults from the run's environment and its arguments and relative paths from the run", () => {
    const work = join(scratch, "work")
    mkdirSync(join(work, "tree/sub"), { recursive: true })
    writeFileSync(join(work, "tree/sub/file"), "hello\n")
    // --store's default is $B3_STORE of this run: the path is added to that chroot store
    const added = fromSnapshot(["store", "add", "tree"], work, { HOME: work, B3_STORE: join(work, "store") })
    expect(added.stderr).toBe("")
    const path = added.stdout.trim()
    expect(path).toMatch(/^\/nix\/store\/[a-z0-9]{32}-tree$/)
    expect(existsSync(join(work, "store", path, "sub/file"))).toBe(true)
    expect(fromSnapshot(["hash", "path", "tree"], work, { HOME: work }).stdout).toBe(fromBundle(["hash", "path", join(work, "tree")]))
  })

  it("hashes a tree big enough for the worker threads as the bundle does", () => {
    const tree = join(scratch, "big-tree")
    for (let d = 0; d < 8; d++) {
      mkdirSync(join(tree, `d${d}`), { recursive: true })
      for (let f = 0; f < 300; f++) writeFileSync(join(tree, `d${d}`, `f${f}`), `${d}/${f}\n`.repeat(f))
    }
    expect(readdirSync(tree)).toHaveLength(8)
    const result = fromSnapshot(["hash", "path", tree], scratch, { HOME: scratch })
    expect(result.stderr).toBe("")
    expect(result.stdout).toBe(fromBundle(["hash", "path", tree]))
  })
})
