/**
 * b3 and Nix on one store at once. Every round runs b3 and Nix processes side by side on one chroot
 * store: adds of multi-MiB trees, sandboxed builds, and garbage collections by both. Every operation
 * of both must succeed, and both verifiers must find the store clean after every round.
 *
 * Nix 2.8's own collector deletes every name in the store directory that is not a store path, the
 * temporary directory of a running `nix-store --add` included (a race inside Nix, not with b3), so
 * Nix's collector runs alongside b3's adds and builds and Nix's builds, and Nix's adds alongside b3's
 * collector: every pairing of the two implementations, none of Nix with itself.
 *
 * Also: opening a store never removes what another program is working on, only b3's own temporary
 * trees of dead processes; temporary-roots files of dead processes are removed by b3's collector; a
 * sandboxed build killed with SIGKILL leaves a build directory that the next build reclaims.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { randomBytes } from "node:crypto"
import { addBusybox } from "../support/busybox.ts"
import { b3Bin, runB3 } from "../support/b3.ts"
import { makeScratch, nix, nixEnv, removeScratch } from "../support/nix.ts"

let scratch: string
let root: string
let bb: string

/** Runs a command to completion; resolves with its exit status and output. `onStderr` sees the output so far. */
const run = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env, onStderr?: (text: string) => void) =>
  new Promise<{ command: string; status: number | null; stderr: string }>((resolve) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (data: Buffer) => { stderr += data.toString(); onStderr?.(stderr) })
    child.on("close", (status) => resolve({ command: `${command} ${args.join(" ")}`, status, stderr }))
  })

const b3 = (...args: Array<string>) => run(b3Bin, args)
const nixTool = (command: string, ...args: Array<string>) => run(command, args, nixEnv)

/** A tree of `files` random files of `size` bytes. */
const makeTree = (dir: string, files: number, size: number) => {
  mkdirSync(dir, { recursive: true })
  for (let i = 0; i < files; i++) writeFileSync(join(dir, `f${i}`), randomBytes(size))
  return dir
}

const derivationModule = (name: string, script = "\${bb}/bin/busybox head -c 2000000 /dev/urandom > $out") => `
import { Result } from "effect"
import { derivation, storePath, str } from ${JSON.stringify(join(process.cwd(), "src/core/derivation/builder-api.ts"))}
const bb = storePath(${JSON.stringify(bb)})
export default Result.getOrThrow(derivation({ name: ${JSON.stringify(name)}, system: "x86_64-linux", builder: str\`\${bb}/bin/sh\`,
  args: ["-c", str\`${script}\`] }))
`

const nixExpression = (name: string) => `
let bb = builtins.storePath ${bb}; in
derivation { name = "${name}"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
  args = [ "-c" "\${bb}/bin/busybox head -c 2000000 /dev/urandom > $out" ]; }
`

beforeAll(() => {
  scratch = makeScratch("b3-share-")
  root = join(scratch, "root")
  bb = addBusybox(root)
  // busybox is every build's input: a permanent root, so no collector takes it
  symlinkSync(bb, join(root, "nix/var/nix/gcroots/busybox"))
}, 60_000)
afterAll(() => removeScratch(scratch))

const verifyBoth = () => {
  const mine = runB3(["store", "verify", "--store", `local?root=${root}`])
  expect(mine.stderr).toBe("")
  expect(mine.status).toBe(0)
  nix("nix-store", ["--store", root, "--verify", "--check-contents"])
}

describe("b3 and Nix sharing a store", () => {
  it("20 rounds of concurrent adds, sandboxed builds and garbage collection by both: every operation succeeds, both verifiers clean", async () => {
    const store = `local?root=${root}`
    for (let round = 0; round < 20; round++) {
      const dir = join(scratch, `round-${round}`)
      mkdirSync(dir)
      writeFileSync(join(dir, "b3-drv.ts"), derivationModule(`b3-built-${round}`))
      writeFileSync(join(dir, "nix-drv.nix"), nixExpression(`nix-built-${round}`))
      const b3Tree = makeTree(join(dir, "b3-tree"), 16, 1 << 20)
      const nixTree = makeTree(join(dir, "nix-tree"), 16, 1 << 20)
      const nixBuild = () => nixTool("nix-build", join(dir, "nix-drv.nix"), "--store", root, "--no-out-link",
        "--option", "sandbox", "true", "--option", "substituters", "")
      // Nix's collector with b3's adds and builds (and Nix's builds)
      const first = await Promise.all([
        b3("store", "add", "--store", store, b3Tree),
        b3("build", "--store", store, join(dir, "b3-drv.ts")),
        nixBuild(),
        nixTool("nix-store", "--store", root, "--gc")
      ])
      // b3's collector with Nix's adds and builds (and b3's)
      const second = await Promise.all([
        nixTool("nix-store", "--store", root, "--add", nixTree),
        nixBuild(),
        b3("store", "add", "--store", store, join(b3Tree, "f0")),
        b3("build", "--store", store, join(dir, "b3-drv.ts")),
        b3("store", "gc", "--store", store)
      ])
      for (const result of [...first, ...second]) expect(result.status, `round ${round}: ${result.command}\n${result.stderr}`).toBe(0)
      verifyBoth()
    }
  }, 900_000)

  it("opening a store leaves other programs' entries alone and removes only b3's own temporaries of dead processes", async () => {
    const store = join(root, "nix/store")
    const dead = await new Promise<number>((resolve) => {
      const child = spawn("true")
      child.on("exit", () => resolve(child.pid!))
    })
    const foreign = [
      "add-4242-1",                                                        // Nix's add in progress
      "0123456789abcdfghijklmnpqrsvwxyz-foo.drv.chroot",                   // Nix's sandbox root
      "tmp-4242-0",
      "0123456789abcdfghijklmnpqrsvwxyz-half-added"                        // a store path name without a row
    ]
    for (const name of foreign) mkdirSync(join(store, name))
    const b3Temp = join(root, "nix/var/nix/b3-tmp", `${dead}-add-abcdef`)
    const b3Live = join(root, "nix/var/nix/b3-tmp", `${process.pid}-add-abcdef`)
    mkdirSync(b3Temp, { recursive: true })
    mkdirSync(b3Live)
    const result = runB3(["path-info", "--store", `local?root=${root}`, bb])
    expect(result.status).toBe(0)
    for (const name of foreign) expect(existsSync(join(store, name))).toBe(true)
    expect(existsSync(b3Temp)).toBe(false)
    expect(existsSync(b3Live)).toBe(true)
    // The collector takes store-path names without a row that are nobody's temporary root (as Nix's
    // does; a running build's .chroot is its derivation's root), never names that are not store paths.
    expect(runB3(["store", "gc", "--store", `local?root=${root}`]).status).toBe(0)
    for (const name of foreign.slice(1, 2).concat(foreign.slice(3))) expect(existsSync(join(store, name))).toBe(false)
    for (const name of [foreign[0]!, foreign[2]!]) {
      expect(existsSync(join(store, name))).toBe(true)
      spawnSync("rm", ["-rf", join(store, name)])
    }
    spawnSync("rm", ["-rf", b3Live])
  })

  it("b3's collector keeps the temporary roots of a running Nix build and removes the roots files of dead processes", async () => {
    const dir = join(scratch, "slow")
    mkdirSync(dir)
    writeFileSync(join(dir, "slow.nix"), `
let bb = builtins.storePath ${bb}; input = derivation { name = "slow-input"; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = [ "-c" "echo input > $out" ]; };
in derivation { name = "slow"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
  args = [ "-c" "\${bb}/bin/busybox sleep 3; \${bb}/bin/busybox cat \${input} > $out" ]; }`)
    const staleRoots = join(root, "nix/var/nix/temproots", "999999")
    writeFileSync(staleRoots, `${bb}\0`)
    // start the Nix build, and collect once it is building "slow": its input is then only a temporary root
    let started: () => void = () => {}
    const building = new Promise<void>((resolve) => { started = resolve })
    const finished = run("nix-build", [join(dir, "slow.nix"), "--store", root, "--no-out-link", "--option", "sandbox", "true", "--option", "substituters", ""],
      nixEnv, (text) => { if (/building '[^']*-slow\.drv'/.test(text)) started() })
    await building
    const gc = runB3(["store", "gc", "--store", `local?root=${root}`])
    expect(gc.status).toBe(0)
    expect(await finished).toMatchObject({ status: 0 })
    expect(existsSync(staleRoots)).toBe(false)
    verifyBoth()
  }, 120_000)

  it("a build killed with SIGKILL leaves its directory, and the next build reclaims it", async () => {
    const dir = join(scratch, "killed")
    mkdirSync(dir)
    writeFileSync(join(dir, "sleepy.ts"), derivationModule("sleepy", "echo started; \${bb}/bin/busybox sleep 600"))
    const child = spawn(b3Bin, ["build", "--store", `local?root=${root}`, "--print-build-logs", join(dir, "sleepy.ts")], { stdio: ["ignore", "ignore", "pipe"] })
    await new Promise<void>((resolve) => {
      let stderr = ""
      child.stderr.on("data", (data: Buffer) => { stderr += data.toString(); if (stderr.includes("> started")) resolve() })
    })
    const exited = new Promise((resolve) => child.on("exit", resolve))
    child.kill("SIGKILL")
    await exited
    const mine = readdirSync(tmpdir()).filter((n) => n.startsWith(`b3-build-${child.pid}-`))
    expect(mine.length).toBe(1)
    const buildDir = readFileSync(join(tmpdir(), mine[0]!, "build-dir"), "utf8")
    expect(buildDir).toMatch(/\/nix-build-sleepy\.drv-\d+$/)
    const left = [join(tmpdir(), mine[0]!), buildDir]
    for (const path of left) expect(existsSync(path)).toBe(true)
    writeFileSync(join(dir, "quick.ts"), derivationModule("quick-after-kill"))
    const next = runB3(["build", "--store", `local?root=${root}`, join(dir, "quick.ts")])
    expect(next.status).toBe(0)
    for (const path of left) expect(existsSync(path)).toBe(false)
  }, 120_000)
})
