/**
 * The npm packages as a user gets them: `npm pack` (whose prepack builds lib/ and dist/npm/), then
 * `npm install ./b3-0.1.0.tgz` into a scratch project outside this repository, where the installed
 * `b3` runs on the Node it finds, `import … from "b3"` runs on plain Node and type-checks, `b3 run`
 * works, an older Node gets one line saying what to install, and the IPFS and S3 stores are plugins
 * (@b3/ipfs, @b3/s3): named when missing, working when installed, with no react-native anywhere.
 *
 * npm installs from the tarballs and the npm cache (--prefer-offline), the registry for the rest.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync, type SpawnSyncOptions } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const repo = fileURLToPath(new URL("../..", import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), "b3-package-"))
const project = join(scratch, "project")
const tarballs = join(scratch, "tarballs")
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** The environment of a user whose `node` is this Node (≥ 22), outside any npm script. */
const userEnv = (nodeDir = dirname(process.execPath)): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_|^INIT_CWD$/.test(key)) env[key] = value
  env.PATH = [nodeDir, ...(process.env.PATH ?? "").split(delimiter).filter((dir) => !dir.includes("node_modules"))].join(delimiter)
  return env
}

const run = (command: string, args: ReadonlyArray<string>, options: SpawnSyncOptions = {}) => {
  const result = spawnSync(command, args, { cwd: project, env: userEnv(), encoding: "utf8", maxBuffer: 1 << 28, ...options })
  return { status: result.status ?? -1, stdout: String(result.stdout ?? ""), stderr: String(result.stderr ?? ""), pid: result.pid }
}
const ok = (command: string, args: ReadonlyArray<string>, options: SpawnSyncOptions = {}) => {
  const result = run(command, args, options)
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stderr}\n${result.stdout}`)
  return result.stdout
}

const b3 = (args: ReadonlyArray<string>, options: SpawnSyncOptions = {}) => run(join(project, "node_modules", ".bin", "b3"), args, options)

/** Bytes under a directory (as du counts files: apparent sizes, links not followed). */
const sizeOf = (dir: string): number => {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += sizeOf(path)
    else if (entry.isFile()) total += statSync(path).size
  }
  return total
}
const directoriesNamed = (dir: string, name: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => !entry.isDirectory() ? []
    : entry.name === name ? [join(dir, entry.name)] : directoriesNamed(join(dir, entry.name), name))
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`

interface Packed { readonly filename: string; readonly files: ReadonlyArray<{ readonly path: string }> }
let core: Packed
let plugins: ReadonlyArray<Packed>

beforeAll(() => {
  // npm pack runs prepack (scripts/pack-build.ts): b3's lib/ and dist/npm/, then each plugin's lib/.
  const pack = (args: ReadonlyArray<string>) =>
    JSON.parse(ok("npm", ["pack", "--json", "--pack-destination", tarballs, ...args], { cwd: repo, env: userEnv(join(repo, "node_modules", ".bin")) })) as Array<Packed>
  rmSync(tarballs, { recursive: true, force: true })
  ok("mkdir", ["-p", tarballs, project], { cwd: scratch })
  ;[core] = pack([]) as [Packed]
  plugins = pack(["-w", "packages/s3", "-w", "packages/ipfs"])
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "scratch", version: "1.0.0", private: true, type: "module" }))
  ok("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(tarballs, core.filename)])
}, 900_000)

describe("npm package b3", () => {
  it("ships the compiled library, its typings, the CLI bundle and the launcher; no sources, tests or startup snapshot", () => {
    const files = core.files.map((f) => f.path)
    for (const needed of ["bin/b3.cjs", "dist/npm/b3.mjs", "dist/npm/lib/run-pipeline.mjs", "dist/npm/lib/modules.json", "lib/index.js", "lib/index.d.ts", "lib/plugin.js", "lib/core/derivation/index.d.ts", "lib/cli/run-pipeline.js", "package.json"]) {
      expect(files).toContain(needed)
    }
    expect(files.filter((f) => /^(src|test|bench|scripts|packages|examples)\//.test(f) || f.endsWith(".blob") || f === "bin/b3")).toEqual([])
  })

  it("installs small: b3 and its dependencies take at most 150 MiB, with no IPFS, AWS SDK or react-native", () => {
    const modules = join(project, "node_modules")
    const size = sizeOf(modules)
    console.log(`core install: ${mib(size)} in node_modules (b3 itself ${mib(sizeOf(join(modules, "b3")))})`)
    expect(size).toBeLessThan(150 * 1048576)
    for (const heavy of ["helia", "@aws-sdk", "react-native", "@react-native", "node"]) expect(existsSync(join(modules, heavy))).toBe(false)
  })

  it("gives a working b3 command on this Node: --version, store add", () => {
    const version = b3(["--version"])
    expect(version.stderr).toBe("")
    expect(version.stdout.trim()).toBe("b3 v0.1.0")
    writeFileSync(join(scratch, "hello.txt"), "hello from the package\n")
    const added = b3(["store", "add", "--store", join(scratch, "store"), join(scratch, "hello.txt")])
    expect(added.stderr).toBe("")
    expect(added.status).toBe(0)
    // the same path the checkout's b3 makes
    const fromCheckout = spawnSync(join(repo, "bin", "b3"), ["store", "add", "--store", join(scratch, "store2"), join(scratch, "hello.txt")], { encoding: "utf8" })
    expect(added.stdout).toBe(fromCheckout.stdout)
    expect(added.stdout).toMatch(/^\/nix\/store\/[0-9a-z]{32}-hello\.txt\n$/)
  })

  it("runs a program that imports b3 and b3/derivation on plain Node, and type-checks it against the shipped typings", () => {
    writeFileSync(join(project, "prog.ts"), [
      `import { Effect, Result } from "effect"`,
      `import { MemoryStore, StorePath, StoreRead, StoreWrite } from "b3"`,
      `import { derivation, str } from "b3/derivation"`,
      `const program = Effect.gen(function*() {`,
      `  const info = yield* (yield* StoreWrite).addText("hello.txt", "hello\\n")`,
      `  return StorePath.print(info.path, (yield* StoreRead).storeDir)`,
      `})`,
      `const path: string = await Effect.runPromise(program.pipe(Effect.provide(MemoryStore.layer())))`,
      `const drv = Result.getOrThrow(derivation({ name: "hi", system: "x86_64-linux", builder: str\`/bin/sh\`, args: ["-c", "echo hi > $out"] }))`,
      `console.log(path, drv.name)`
    ].join("\n"))
    const output = run(process.execPath, ["prog.ts"])
    expect(output.stderr).toBe("")
    expect(output.stdout).toBe("/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-hello.txt hi\n")

    // The typings are real: the program type-checks, and a wrong use of b3's API does not.
    writeFileSync(join(project, "wrong.ts"), `import { StorePath } from "b3"\nexport const n: number = StorePath.print\n`)
    // A TypeScript project's usual settings (Effect's typings need skipLibCheck for DOM-only names).
    const tsc = (file: string) => run(process.execPath, [join(repo, "node_modules", "typescript", "bin", "tsc"), "--target", "ES2023", "--lib", "ES2023",
      "--module", "NodeNext", "--moduleResolution", "NodeNext", "--strict", "--noEmit", "--skipLibCheck", "--types", "node", file])
    const checkProg = tsc("prog.ts")
    expect(checkProg.stdout).toBe("")
    expect(checkProg.status).toBe(0)
    const checkWrong = tsc("wrong.ts")
    expect(checkWrong.stdout).toMatch(/^wrong\.ts\(2,14\): error TS2322: Type .* is not assignable to type 'number'/)
    expect(checkWrong.status).not.toBe(0)
  })

  it("runs a pipeline with b3 run from the installed package (its library bundle), from a directory outside the project", () => {
    const elsewhere = join(scratch, "elsewhere")
    ok("mkdir", ["-p", elsewhere])
    writeFileSync(join(elsewhere, "note.ts"), [
      `import { Effect } from "effect"`,
      `import { StorePath, StoreRead, StoreWrite } from "b3"`,
      `export default (args: ReadonlyArray<string>) => Effect.gen(function*() {`,
      `  const info = yield* (yield* StoreWrite).addText("note.txt", args.join(" "))`,
      `  return StorePath.print(info.path, (yield* StoreRead).storeDir) + " " + import.meta.resolve("b3")`,
      `})`
    ].join("\n"))
    const result = b3(["run", "note.ts", "--store", "memory://", "--", "a", "note"], { cwd: elsewhere })
    expect(result.stderr).toBe("")
    expect(result.status).toBe(0)
    // b3 from the package's library bundle (what its runner was loaded with)
    expect(result.stdout).toMatch(/^\/nix\/store\/[0-9a-z]{32}-note\.txt file:\/\/.*\/node_modules\/b3\/dist\/npm\/lib\/b3\.mjs\n$/)
    // bin/b3.cjs runs it in its own process (no CLI in front), global flags anywhere; the CLI takes what the runner does not read
    writeFileSync(join(elsewhere, "pid.ts"), `import { Effect } from "effect"\nexport default Effect.sync(() => ({ pid: process.pid, args: process.argv.slice(2) }))\n`)
    const pid = b3(["--json", "run", "pid.ts", "--store=memory://", "-q", "--", "--json"], { cwd: elsewhere })
    expect(pid.stderr).toBe("")
    expect(JSON.parse(pid.stdout)).toEqual({ pid: pid.pid, args: ["--json"] })
    const bogus = b3(["run", "pid.ts", "--store", "memory://", "--bogus"], { cwd: elsewhere })
    expect(bogus).toMatchObject({ status: 2, stdout: "", stderr: "b3: Unrecognized flag: --bogus in command b3 run (see 'b3 run --help')\n" })
    expect(b3(["run", "missing.ts", "--store", "memory://"], { cwd: elsewhere })).toMatchObject({ status: 3, stderr: "b3: path 'missing.ts' does not exist\n" })
    expect(b3(["run", "--help"], { cwd: elsewhere })).toMatchObject({ status: 0, stdout: expect.stringMatching(/USAGE\n\s+b3 run /) })
  })

  it("on a Node older than 22.18 prints one line saying what to install, and nothing that cannot work", () => {
    // The machine's own node when it is older (Debian's 20 here); otherwise this Node, told it is 20.
    const system = spawnSync("sh", ["-c", "command -v node"], { env: { PATH: "/usr/local/bin:/usr/bin:/bin" }, encoding: "utf8" }).stdout.trim()
    const systemVersion = system ? spawnSync(system, ["--version"], { encoding: "utf8" }).stdout.trim() : ""
    const old = /^v(1\d|2[01])\./.test(systemVersion)
    const preload = join(scratch, "pretend-20.cjs")
    writeFileSync(preload, `Object.defineProperty(process.versions, "node", { value: "20.20.0" })\n`)
    const launcher = join(project, "node_modules", "b3", "bin", "b3.cjs")
    const result = old ? run(system, [launcher, "--version"]) : run(process.execPath, ["--require", preload, launcher, "--version"])
    expect(result.status).toBe(1)
    expect(result.stdout).toBe("")
    const lines = result.stderr.split("\n").filter((l) => l !== "")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^b3: needs Node\.js 22\.18\.0 or newer, and this is Node\.js (1\d|2[01])\.\d+\.\d+ .*install a current Node\.js/)
    expect(lines[0]).not.toMatch(/npm ci|npm install/)
  })
})

describe("plugins @b3/ipfs and @b3/s3", () => {
  it("without them, ipfs://, s3://, chunked+s3:// and b3 ipfs fail with one line naming the package to install", () => {
    const cases: Array<[ReadonlyArray<string>, string]> = [
      [["path-info", "--store", `ipfs://?repo=${join(scratch, "ipfs")}`, "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-hello.txt"], "@b3/ipfs"],
      [["ipfs", "root", "--store", `ipfs://?repo=${join(scratch, "ipfs")}`], "@b3/ipfs"],
      [["path-info", "--store", "s3://bucket", "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-hello.txt"], "@b3/s3"],
      [["path-info", "--store", "chunked+s3://bucket", "/nix/store/qa1w9gdfrba6jl2r57mb3c43863gqywp-hello.txt"], "@b3/s3"]
    ]
    for (const [args, plugin] of cases) {
      const result = b3(args)
      expect(result.status, args.join(" ")).toBe(2)
      const lines = result.stderr.split("\n").filter((l) => l !== "")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(`${plugin} plugin, which is not installed: npm install ${plugin}`)
    }
  })

  it("installed beside b3, they open their stores; the IPFS plugin brings no react-native (its Helia parts are bundled)", () => {
    const ipfs = plugins.find((p) => p.filename.includes("ipfs"))!
    expect(ipfs.files.map((f) => f.path)).toEqual(expect.arrayContaining(["lib/index.js", "lib/index.d.ts"]))
    const before = sizeOf(join(project, "node_modules"))
    ok("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...plugins.map((p) => join(tarballs, p.filename))])
    const after = sizeOf(join(project, "node_modules"))
    console.log(`with @b3/ipfs and @b3/s3: ${mib(after)} (+${mib(after - before)}; @b3/ipfs ${mib(sizeOf(join(project, "node_modules", "@b3", "ipfs")))})`)
    expect(directoriesNamed(join(project, "node_modules"), "react-native")).toEqual([])
    expect(directoriesNamed(join(project, "node_modules"), "@react-native")).toEqual([])

    const store = join(scratch, "store")
    const path = "/nix/store/" + readdirSync(join(store, "nix", "store")).find((n) => n.endsWith("-hello.txt"))!
    const repoUri = `ipfs://?repo=${join(scratch, "ipfs")}`
    const copied = b3(["copy", "--from", store, "--to", repoUri, path])
    expect(copied.status, copied.stderr).toBe(0)
    const root = b3(["ipfs", "root", "--store", repoUri])
    expect(root.status, root.stderr).toBe(0)
    expect(root.stdout).toMatch(/^bafy[a-z2-7]+\n$/)
    const fromIpfs = b3(["nar", "dump", "--store", repoUri, path])
    const fromStore = b3(["nar", "dump", "--store", store, path])
    expect(fromIpfs.status, fromIpfs.stderr).toBe(0)
    expect(fromIpfs.stdout).toBe(fromStore.stdout)

    // The S3 plugin is loaded and reads its own options (no bucket needed to get this far).
    const s3 = b3(["path-info", "--store", "s3://Not_A_Bucket", path])
    expect(s3.status).toBe(2)
    expect(s3.stderr).toMatch(/'Not_A_Bucket' is not an S3 bucket name/)
  })
})
