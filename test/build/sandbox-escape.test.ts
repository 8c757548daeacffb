/**
 * What a builder cannot do, and what is left after a build that did not finish: no network
 * (except fixed-output derivations), nothing of the host's file system or store beyond its input
 * closure, no writes that survive outside its outputs; interruption, time limits and failures
 * leave no process, mount or temporary directory behind and end in the right typed error.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn, spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { join } from "node:path"
import { Cause, Effect, Exit, Fiber, Option } from "effect"
import { findBuildUsers, runInSandbox, type SandboxError, type RunSpec } from "../../src/layers/sandbox/index.ts"
import { chrootPool } from "../../src/layers/sandbox/work-dirs.ts"
import { addBusybox } from "../support/busybox.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"

let scratch: string
let storeRoot: string
let bb: string
let secret: string

beforeAll(() => {
  scratch = makeScratch("b3-sandbox-escape-")
  storeRoot = join(scratch, "root")
  bb = addBusybox(storeRoot)
  writeFileSync(join(scratch, "secret"), "top secret\n")
  secret = nix("nix-store", ["--store", storeRoot, "--add", join(scratch, "secret")])
})
afterAll(() => removeScratch(scratch))

const base32 = "0123456789abcdfghijklmnpqrsvwxyz"
const fakeOutput = (name: string) =>
  `/nix/store/${Array.from({ length: 32 }, () => base32[Math.floor(Math.random() * 32)]).join("")}-${name}`

/** A spec running `script` (busybox as $B) with busybox as the only input. */
const spec = (script: string, extra: Partial<RunSpec> = {}): RunSpec => {
  const out = fakeOutput("escape")
  return {
    storeDir: "/nix/store",
    realStoreDir: join(storeRoot, "nix/store"),
    drvName: "escape",
    builder: `${bb}/bin/sh`,
    args: ["-c", `B=${bb}/bin/busybox\n${script}`],
    env: { out, name: "escape", system: "x86_64-linux", builder: `${bb}/bin/sh` },
    inputPaths: [bb],
    outputPaths: [out],
    fixedOutput: false,
    cores: 1,
    ...extra
  }
}

/** Runs a spec, collecting its log; returns the exit of the build and the log. */
const run = (s: RunSpec) => {
  let log = ""
  const decoder = new TextDecoder()
  return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const exit = yield* Effect.exit(runInSandbox({ ...s, onLog: (chunk) => { log += decoder.decode(chunk, { stream: true }); s.onLog?.(chunk) } }))
    return { exit, log }
  })))
}

const errorOf = (exit: Exit.Exit<unknown, SandboxError>): SandboxError | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined

const processesMentioning = (marker: string): Array<string> =>
  readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
    try { return readFileSync(`/proc/${pid}/cmdline`, "latin1").includes(marker) } catch { return false }
  })

const listen = (onConnection: () => void): Promise<{ server: Server; port: number }> =>
  new Promise((resolve) => {
    const server = createServer((socket) => { onConnection(); socket.end("hello from the host\n") })
    server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as { port: number }).port }))
  })

describe("sandbox isolation", () => {
  it("has no network: a server on the host's 127.0.0.1 is unreachable, other addresses have no route", async () => {
    let connections = 0
    const { server, port } = await listen(() => { connections++ })
    try {
      const { exit, log } = await run(spec(`
$B nc -w 5 127.0.0.1 ${port} < /dev/null && echo "connected" || echo "no connection to the host"
$B nc -w 5 10.1.2.3 80 < /dev/null 2>&1 || true
$B ip -o link | $B cut -d: -f2
$B mkdir $out`))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(log).toContain("no connection to the host")
      expect(log).toContain("Network is unreachable")
      expect(log).not.toContain("hello from the host")
      expect(connections).toBe(0)
    } finally {
      server.close()
    }
  })

  it("gives a fixed-output derivation the host network (it can reach the host's 127.0.0.1)", async () => {
    let connections = 0
    const { server, port } = await listen(() => { connections++ })
    try {
      const { exit, log } = await run(spec(`$B nc -w 5 127.0.0.1 ${port} < /dev/null; echo fixed > $out`, { fixedOutput: true }))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(log).toContain("hello from the host")
      expect(connections).toBe(1)
    } finally {
      server.close()
    }
  })

  it("shows nothing of the host: no /home, /root, host /etc or /tmp, and no store path outside the closure", async () => {
    const hostFile = `/tmp/b3-sandbox-host-file-${process.pid}`
    writeFileSync(hostFile, "host\n")
    const { exit, log } = await run(spec(`
$B ls /home /root /etc/shadow ${hostFile} 2>&1
echo "etc: $($B ls /etc)"
echo "store: $($B ls /nix/store)"
$B cat ${secret} 2>&1
$B ls -d ${secret} 2>&1
echo "processes: $($B ps -o pid,comm | $B wc -l)"
$B mkdir $out`)).finally(() => rmSync(hostFile))
    expect(Exit.isSuccess(exit)).toBe(true)
    expect(log).toContain("ls: /home: No such file or directory")
    expect(log).toContain("ls: /root: No such file or directory")
    expect(log).toContain("ls: /etc/shadow: No such file or directory")
    expect(log).toContain(`ls: ${hostFile}: No such file or directory`)
    expect(log).toContain("etc: group\nhosts\npasswd")
    expect(log).toContain(`store: ${bb.slice("/nix/store/".length)}\ncat:`) // the input, nothing else
    expect(log).toContain(`cat: can't open '${secret}': No such file or directory`)
    expect(log).not.toContain("top secret")
  })

  it("keeps no write outside the outputs: /, /etc and inputs refuse, the chroot's store and /tmp vanish", async () => {
    const marker = `b3-escape-${process.pid}-${Date.now()}`
    const { exit, log } = await run(spec(`
echo x > /${marker} 2>&1 || echo "/ refused"
echo x > /etc/${marker} 2>&1 || echo "/etc refused"
$B rm -rf ${bb} 2>/dev/null || echo "input refused"
$B touch ${bb}/bin/${marker} 2>/dev/null || echo "input file refused"
echo x > /nix/store/${marker} && echo "chroot store writable"
echo x > /tmp/${marker} && echo "chroot tmp writable"
$B mkdir $out`))
    expect(Exit.isSuccess(exit)).toBe(true)
    for (const line of ["/ refused", "/etc refused", "input refused", "input file refused"]) expect(log).toContain(line)
    expect(existsSync(join(storeRoot, "nix/store", marker))).toBe(false)
    expect(existsSync(join("/tmp", marker))).toBe(false)
    expect(existsSync(join(storeRoot, bb, "bin/busybox"))).toBe(true)
    expect(readdirSync(join(storeRoot, "nix/store")).some((name) => name.includes(marker))).toBe(false)
  })
})

/**
 * Starts a build in the background; `ready` resolves once its log shows "started" (or the build
 * has ended, so that a broken build fails the test's checks instead of hanging it).
 */
const startInBackground = (s: RunSpec) => {
  let log = ""
  let started: () => void = () => {}
  const startedPromise = new Promise<void>((resolve) => { started = resolve })
  const decoder = new TextDecoder()
  const fiber = Effect.runFork(Effect.scoped(runInSandbox({
    ...s,
    onLog: (chunk) => {
      log += decoder.decode(chunk, { stream: true })
      if (log.includes("started\n")) started()
    }
  })))
  return {
    ready: Promise.race([startedPromise, Effect.runPromiseExit(Fiber.join(fiber))]),
    log: () => log,
    interrupt: () => Effect.runPromise(Fiber.interrupt(fiber))
  }
}

/** Holds an exclusive flock on `file` (as Nix does on a build user's lock) until `release`. */
const holdExclusive = (file: string): Promise<{ release: () => Promise<void> }> =>
  new Promise((resolve) => {
    const child = spawn("flock", ["--exclusive", file, "sh", "-c", "echo locked; read x"], { stdio: ["pipe", "pipe", "inherit"] })
    const closed = new Promise<void>((done) => child.on("close", () => done()))
    child.stdout.on("data", () => resolve({ release: () => { child.stdin.end(); return closed } }))
  })

const flockFree = (file: string) => spawnSync("flock", ["--exclusive", "--nonblock", file, "true"]).status === 0

/** How many flocks on `file` processes started by this test process hold (from /proc/locks), whatever others hold. */
const locksHeldByOurChildren = (file: string): number => {
  const inode = statSync(file).ino
  const parentOf = (pid: string) => { try { return /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] } catch { return undefined } }
  return readFileSync("/proc/locks", "utf8").split("\n").filter((line) => {
    const fields = line.trim().split(/\s+/)
    return fields[1] === "FLOCK" && Number(fields[5]?.split(":")[2]) === inode && parentOf(fields[4]!) === String(process.pid)
  }).length
}

describe("store directory", () => {
  it("can be another than /nix/store (the physical store stays where it is)", async () => {
    const storeDir = "/b3/store"
    const input = bb.replace("/nix/store", storeDir)
    const out = fakeOutput("other").replace("/nix/store", storeDir)
    const { exit, log } = await run({
      ...spec(""), storeDir, builder: `${input}/bin/sh`, inputPaths: [input], outputPaths: [out],
      args: ["-c", `B=${input}/bin/busybox; echo "NIX_STORE=$NIX_STORE"; $B ls -1a / /b3/store; $B mkdir $out`],
      env: { out }
    })
    expect(Exit.isSuccess(exit)).toBe(true)
    expect(log).toContain("NIX_STORE=/b3/store")
    expect(log).toContain(`/b3/store:\n.\n..\n${input.slice(storeDir.length + 1)}\n`)
    expect(log).not.toMatch(/^nix$/m)
  })

  // The sandbox layer reuses chroot trees and store directories from one build to the next (a pool).
  it("reused from build to build: a builder's leftovers are gone for the next one, and no link to an input file stays", async () => {
    const links = () => statSync(join(storeRoot, secret)).nlink
    const before = links()
    const between = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      yield* chrootPool
      const build = (script: string) => Effect.exit(Effect.scoped(runInSandbox(spec(`$B cat ${secret} > /dev/null && ${script}`, { inputPaths: [bb, secret] }))))
      expect(Exit.isSuccess(yield* build("$B touch /nix/store/leftover && $B mkdir $out"))).toBe(true)
      // one kept would hold the store file's inode after the path is deleted (and its `.links` entry)
      const between = links()
      expect(Exit.isSuccess(yield* build("[ ! -e /nix/store/leftover ] && $B mkdir $out"))).toBe(true)
      return between
    })))
    expect(between).toBe(before)
    expect(links()).toBe(before)
  })
})

describe("build users and Nix", () => {
  it("holds Nix's user-pool lock while building, and builds as another user when Nix holds one", async () => {
    const users = await Effect.runPromise(findBuildUsers)
    expect(users.length).toBeGreaterThan(1)
    // "Nix" builds as a user (the first whose lock nobody holds right now: other builds may run on this machine)
    const held = users.find((u) => flockFree(u.lockFile!))!
    const nixHolds = await holdExclusive(held.lockFile!)
    const build = startInBackground(spec(`
$B cat /proc/self/uid_map
echo "started"
$B sleep 86399`))
    let taken: (typeof users)[number] | undefined
    try {
      await build.ready
      const uid = Number(/^\s*1000\s+(\d+)\s+1$/m.exec(build.log())?.[1])
      taken = users.find((u) => u.uid === uid)
      expect(taken).toBeDefined()
      expect(taken!.uid).not.toBe(held.uid)
      expect(locksHeldByOurChildren(taken!.lockFile!)).toBe(1) // Nix could not take it now
    } finally {
      await build.interrupt()
      await nixHolds.release()
    }
    expect(locksHeldByOurChildren(taken!.lockFile!)).toBe(0) // released with the build
  })
})

describe("ending a build", () => {
  it("interrupting the fiber mid-build kills every process and leaves no mount or temporary directory", async () => {
    const marker = 86400 + (process.pid % 1000)
    // The marker is computed inside, so it is in the sleeps' command lines but not in the script's.
    const running = startInBackground(spec(`
echo "root $($B awk '$5 == "/" {print $4}' /proc/self/mountinfo)"
echo "build $($B awk '$5 == "/build" {print $4}' /proc/self/mountinfo)"
M=$((${marker} - 1 + 1))
$B sleep $M &
$B sh -c "$B sleep $M; echo never" &
$B sleep $M &
count() { for f in /proc/[0-9]*/cmdline; do $B tr '\\0' ' ' < $f; echo; done 2>/dev/null | $B grep -c "^[^ ]*busybox sleep $M \\$"; }
until [ "$(count)" -ge 3 ]; do :; done
echo "started"
wait`))
    try {
      await running.ready
      expect(processesMentioning(`sleep\0${marker}`).length).toBe(3)
    } finally {
      await running.interrupt()
    }
    const log = running.log()
    const root = /root (\S+)/.exec(log)![1]!
    const build = /build (\S+)/.exec(log)![1]!
    expect(root).toMatch(/^\/tmp\/b3-build-\d+-[^/]+\/root$/)
    expect(build).toMatch(/^\/tmp\/nix-build-escape\.drv-\d+$/)
    expect(processesMentioning(`sleep\0${marker}`)).toEqual([])
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(root.slice(0, -"/root".length))
    expect(existsSync(root.slice(0, -"/root".length))).toBe(false)
    expect(existsSync(build)).toBe(false)
  })

  it("kills a build that exceeds its time limit (BuildTimedOut), leaving no process", async () => {
    const marker = `${87400 + (process.pid % 1000)}`
    const { exit, log } = await run(spec(`echo "working"; $B sleep ${marker}`, { timeoutSeconds: 1 }))
    expect(errorOf(exit)?._tag, errorOf(exit)?.message).toBe("BuildTimedOut")
    expect(errorOf(exit)?.message).toContain("building 'escape' timed out after 1 seconds")
    expect(log).toContain("working")
    expect(processesMentioning(`sleep\0${marker}`)).toEqual([])
  })

  it("kills a build that is silent for too long (BuildSilenceTimedOut)", async () => {
    const marker = `${88400 + (process.pid % 1000)}`
    const { exit } = await run(spec(`echo "a line"; $B sleep ${marker}`, { maxSilentSeconds: 1 }))
    expect(errorOf(exit)?._tag, errorOf(exit)?.message).toBe("BuildSilenceTimedOut")
    expect(processesMentioning(`sleep\0${marker}`)).toEqual([])
  })

  it("reports a failing builder (BuilderFailed with exit code and log tail), a missing output and a missing builder", async () => {
    const failed = errorOf((await run(spec(`for i in $($B seq 1 40); do echo "line $i"; done; exit 3`))).exit)
    expect(failed?._tag).toBe("BuilderFailed")
    expect(failed?._tag === "BuilderFailed" && failed.exitCode).toBe(3)
    expect(failed?.message).toContain("builder for 'escape' failed with exit code 3")
    expect(failed?.message).toContain("line 16\n") // the last 25 lines: 16…40
    expect(failed?.message).toContain("line 40")
    expect(failed?.message).not.toContain("line 15\n")

    const missing = errorOf((await run(spec(`echo "made nothing"`))).exit)
    expect(missing?._tag).toBe("OutputMissing")

    const noBuilderError = errorOf((await run({ ...spec(""), builder: `${bb}/bin/nope` })).exit)
    expect(noBuilderError?._tag).toBe("SandboxSetupFailed")
    expect(noBuilderError?.message).toContain(`executing '${bb}/bin/nope': No such file or directory`)
  })

  it("reports a failing first stage (as root: mounts, the build user) as the step and its error", async () => {
    const store = join(scratch, "no-such-store")
    const error = errorOf((await run({ ...spec("echo never > $out"), inputPaths: [], realStoreDir: store })).exit)
    expect(error?._tag).toBe("SandboxSetupFailed")
    expect(error?.message).toContain("binding the store into the sandbox's work directory: No such file or directory")
  })
})
