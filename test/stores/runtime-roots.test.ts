/**
 * Runtime roots (Nix's findRuntimeRoots): store paths that running processes hold through an open
 * file, their working directory, a mapping or their environment stay alive through GC. Checked on a
 * fake /proc tree (what is read and what is skipped), with real processes against b3's collector,
 * against Nix's own `nix-store --gc --print-roots` on the same store, and through b3's daemon
 * (censored for clients that are not trusted).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { closeSync, mkdirSync, openSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as StorePath from "../../src/core/store-path.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import { censored, scanProc, storeRootsOf } from "../../src/layers/local/runtime-roots.ts"
import { startB3Daemon } from "../support/daemons.ts"
import { makeScratch, nixEnv, removeScratch } from "../support/nix.ts"

const scratch = Effect.acquireRelease(Effect.sync(() => makeScratch("b3-runtime-roots-")), (dir) => Effect.sync(() => removeScratch(dir)))

/** A running process, killed (and waited for) when the scope ends or `stop` is called. */
const running = (start: () => ChildProcess) => Effect.acquireRelease(
  Effect.callback<ChildProcess, Error>((resume) => {
    const child = start()
    child.once("spawn", () => resume(Effect.succeed(child)))
    child.once("error", (e) => resume(Effect.fail(e)))
  }),
  (child) => stop(child))

const stop = (child: ChildProcess) => Effect.callback<void>((resume) => {
  if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
  child.once("exit", () => resume(Effect.void))
  child.kill("SIGKILL")
})

describe("runtime roots", () => {
  it("reads exe, cwd, fd/*, maps, environ and the kernel's helpers from /proc, skipping what is missing or not a path", () => {
    const dir = makeScratch("b3-fake-proc-")
    try {
      const store = "/s/store"
      const p = (name: string) => `${store}/${"a".repeat(32)}-${name}`
      const proc = join(dir, "proc")
      const pid = join(proc, "123")
      mkdirSync(join(pid, "fd"), { recursive: true })
      symlinkSync(`${p("exe")}/bin/prog`, join(pid, "exe"))
      symlinkSync(p("cwd"), join(pid, "cwd"))
      symlinkSync(`${p("fd")}/data`, join(pid, "fd", "3"))
      symlinkSync("socket:[4711]", join(pid, "fd", "4"))
      symlinkSync("/elsewhere/file", join(pid, "fd", "5"))
      writeFileSync(join(pid, "maps"), [
        `7f0000000000-7f0000001000 r-xp 00000000 08:01 42   ${p("lib")}/lib/libc.so`,
        `7f0000002000-7f0000003000 r--p 00000000 08:01 43   ${p("deleted")}/lib/x.so (deleted)`,
        "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0    [stack]",
        ""
      ].join("\n"))
      writeFileSync(join(pid, "environ"), `PATH=${p("env")}/bin:/usr/bin\0HOME=/root\0NIX_STORE=${store}\0`)
      // a process whose fd directory is not readable (gone, or another user's): its exe and cwd still count
      mkdirSync(join(proc, "456"))
      symlinkSync(p("other-cwd"), join(proc, "456", "cwd"))
      writeFileSync(join(proc, "456", "maps"), `0-1 r-xp 0 0:0 1 ${p("not-read")}/x\n`)
      // not processes
      mkdirSync(join(proc, "self"))
      symlinkSync(p("self"), join(proc, "self", "cwd"))
      writeFileSync(join(proc, "789"), "a file, not a process directory")
      mkdirSync(join(proc, "sys", "kernel"), { recursive: true })
      writeFileSync(join(proc, "sys", "kernel", "modprobe"), `${p("kmod")}/bin/modprobe\n`)
      writeFileSync(join(proc, "sys", "kernel", "poweroff_cmd"), "/sbin/poweroff\n")

      const unchecked = scanProc([store], proc)
      const roots = storeRootsOf({ storeDir: store, realStoreDir: store }, unchecked, false)
      expect(roots).toEqual([
        { link: join(pid, "cwd"), target: p("cwd") },
        { link: join(pid, "environ"), target: p("env") },
        { link: join(pid, "exe"), target: p("exe") },
        { link: join(pid, "fd", "3"), target: p("fd") },
        { link: join(proc, "sys", "kernel", "modprobe"), target: p("kmod") },
        { link: join(pid, "maps"), target: p("lib") },
        { link: join(proc, "456", "cwd"), target: p("other-cwd") }
      ])
      expect(storeRootsOf({ storeDir: store, realStoreDir: store }, unchecked, true).map((r) => r.link)).toEqual(Array(7).fill(censored))
      // a chroot store: paths under its real store dir are its paths, by their logical names
      const chroot = storeRootsOf({ storeDir: "/nix/store", realStoreDir: store }, unchecked, false)
      expect(chroot.map((r) => r.target)).toContain(`/nix/store/${"a".repeat(32)}-fd`)
      // a missing /proc is no roots, not an error
      expect(scanProc([store], join(dir, "absent")).size).toBe(0)
    } finally {
      removeScratch(dir)
    }
  })

  it.effect("a path a running process holds through an open file or its working directory survives GC until the process ends, as Nix's collector finds it", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratch
    const storeDir = join(dir, "store")
    const stateDir = join(dir, "state")
    const src = join(dir, "src")
    mkdirSync(join(src, "sub"), { recursive: true })
    writeFileSync(join(src, "sub", "file"), "a directory to stand in")
    const { byFd, byCwd, loose } = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalStore.make({ storeDir, stateDir })
      return {
        byFd: yield* store.write.addText("held-by-fd", "an open file keeps me"),
        byCwd: yield* store.write.addPath(src, { name: "held-by-cwd" }),
        loose: yield* store.write.addText("loose", "nothing holds me")
      }
    }))
    const real = (p: { path: StorePath.StorePath }) => join(storeDir, StorePath.baseName(p.path))
    const printed = (p: { path: StorePath.StorePath }) => StorePath.print(p.path, storeDir)

    const fd = openSync(real(byFd), "r")
    const holder = yield* running(() => spawn("sleep", ["1000"], { cwd: join(real(byCwd), "sub"), stdio: [fd, "ignore", "ignore"] }))
    closeSync(fd) // only the child holds it now

    const store = yield* LocalStore.make({ storeDir, stateDir })
    const roots = yield* store.maintenance.findRoots!()
    const mine = roots.filter((r) => r.link.startsWith(`/proc/${holder.pid}/`))
    expect(mine).toEqual([
      { link: `/proc/${holder.pid}/fd/0`, target: printed(byFd) },
      { link: `/proc/${holder.pid}/cwd`, target: printed(byCwd) }
    ].sort((a, b) => a.target < b.target ? -1 : 1))
    expect((yield* store.maintenance.findRoots!({ censor: true })).filter((r) => r.link === censored).map((r) => r.target).sort())
      .toEqual([printed(byFd), printed(byCwd)].sort())

    // Nix's collector on the same store reports the same runtime roots for this process
    const nixRoots = spawnSync("nix-store", ["--gc", "--print-roots"], { env: { ...nixEnv, NIX_STORE_DIR: storeDir, NIX_STATE_DIR: stateDir, NIX_LOG_DIR: join(dir, "log") } })
    expect(nixRoots.status, nixRoots.stderr.toString()).toBe(0)
    const nixMine = nixRoots.stdout.toString().split("\n").filter((l) => l.startsWith(`/proc/${holder.pid}/`)).sort()
    expect(nixMine).toEqual(mine.map((r) => `${r.link} -> ${r.target}`).sort())

    const gc = yield* store.maintenance.collectGarbage({ ownTempRoots: false })
    expect(gc.deleted).toEqual([printed(loose)])
    expect(yield* store.read.isValidPath(byFd.path)).toBe(true)
    expect(yield* store.read.isValidPath(byCwd.path)).toBe(true)

    yield* stop(holder)
    const after = yield* store.maintenance.collectGarbage({ ownTempRoots: false })
    expect([...after.deleted].sort()).toEqual([printed(byFd), printed(byCwd)].sort())
  })))

  it.effect("b3 daemon reports a process's roots to trusted clients and censors them for others, as nix-daemon", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratch
    const root = join(dir, "r")
    const held = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalStore.make({ root })
      return yield* store.write.addText("held", "held open")
    }))
    const real = join(root, "nix/store", StorePath.baseName(held.path))
    const fd = openSync(real, "r")
    const holder = yield* running(() => spawn("sleep", ["1000"], { stdio: [fd, "ignore", "ignore"] }))
    closeSync(fd)
    const printRoots = (uri: string) => {
      const r = spawnSync("nix-store", ["--store", uri, "--gc", "--print-roots"], { env: nixEnv })
      expect(r.status, r.stderr.toString()).toBe(0)
      return r.stdout.toString().split("\n").filter((l) => l.endsWith(StorePath.print(held.path)))
    }
    const trusted = yield* startB3Daemon(root, join(dir, "trusted.sock"), ["--trust", "all"])
    expect(printRoots(trusted.uri)).toEqual([`/proc/${holder.pid}/fd/0 -> ${StorePath.print(held.path)}`])
    const untrusted = yield* startB3Daemon(root, join(dir, "untrusted.sock"), ["--trust", "none"])
    expect(printRoots(untrusted.uri)).toEqual([`${censored} -> ${StorePath.print(held.path)}`])
  })))
})
