/**
 * Hard-link optimising of the local store (Nix's optimise-store.cc): on two equal copies of a
 * store, b3's optimise and Nix's `nix-store --optimise` make the same `.links` entries and link the
 * same files; the collector removes links nothing uses; through b3's daemon, `nix-store --optimise`
 * and a trusted client's `auto-optimise-store` work, an untrusted client's is ignored.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { chmodSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as StorePath from "../../src/core/store-path.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import { startB3Daemon } from "../support/daemons.ts"
import { makeScratch, nix, nixEnv, removeScratch } from "../support/nix.ts"

const scratch = Effect.acquireRelease(Effect.sync(() => makeScratch("b3-optimise-")), (dir) => Effect.sync(() => removeScratch(dir)))

/** Every file of the store's paths with the `.links` entry it is (name, or "-" when none) and its mode, mtime and link count. */
const linkMap = (realStoreDir: string): Record<string, string> => {
  const linkOf = new Map<number, string>()
  const linksDir = join(realStoreDir, ".links")
  for (const name of readdirSync(linksDir)) linkOf.set(lstatSync(join(linksDir, name)).ino, name)
  const out: Record<string, string> = {}
  const walk = (path: string, rel: string) => {
    const st = lstatSync(path)
    out[rel] = `${st.isDirectory() ? "dir" : st.isSymbolicLink() ? "link" : "file"} ${(st.mode & 0o7777).toString(8)} mtime=${Math.floor(st.mtimeMs / 1000)}`
      + (st.isFile() ? ` nlink=${st.nlink} ${linkOf.get(st.ino) ?? "-"}` : "")
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name), `${rel}/${name}`)
  }
  for (const name of readdirSync(realStoreDir).sort()) if (!name.startsWith(".")) walk(join(realStoreDir, name), name)
  return out
}

const freedLine = /([\d.]+) MiB freed by hard-linking (\d+) files/

describe("optimising the local store (hard links through .links)", () => {
  it.effect("links the same files under the same .links names as Nix's nix-store --optimise on an equal store, and GC drops unused links", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratch
    const src = join(dir, "src")
    const tree = (name: string, files: Record<string, { text: string; exec?: boolean }>) => {
      for (const [rel, f] of Object.entries(files)) {
        const p = join(src, name, rel)
        mkdirSync(join(p, ".."), { recursive: true })
        writeFileSync(p, f.text)
        chmodSync(p, f.exec ? 0o755 : 0o644)
      }
      return join(src, name)
    }
    const a = tree("a", { "same": { text: "shared contents\n" }, "nested/deep/same": { text: "shared contents\n" }, "exe": { text: "shared contents\n", exec: true }, "empty": { text: "" }, "own": { text: "only in a" } })
    const b = tree("b", { "copy-of-same": { text: "shared contents\n" }, "exe2": { text: "shared contents\n", exec: true }, "empty": { text: "" }, "big": { text: "x".repeat(100_000) } })
    const c = tree("c", { "big": { text: "x".repeat(100_000) } })
    const rootB3 = join(dir, "b3")
    const paths = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* LocalStore.make({ root: rootB3 })
      const out: Array<StorePath.StorePath> = []
      for (const p of [a, b, c]) out.push((yield* store.write.addPath(p)).path)
      out.push((yield* store.write.addText("top-level", "shared contents\n")).path)
      return out
    }))
    const rootNix = join(dir, "nix")
    // cp -a: modes and timestamps as they are (Node's cpSync does not keep directories' modes and mtimes)
    expect(spawnSync("cp", ["-a", rootB3, rootNix]).status).toBe(0)

    const store = yield* LocalStore.make({ root: rootB3 })
    const warnings: Array<string> = []
    const result = yield* store.maintenance.optimise!({ warn: (m) => warnings.push(m) })
    const nixOut = spawnSync("nix-store", ["--store", rootNix, "--optimise"], { env: nixEnv })
    expect(nixOut.status, nixOut.stderr.toString()).toBe(0)
    const nixFreed = freedLine.exec(nixOut.stderr.toString())
    expect(nixFreed, nixOut.stderr.toString()).not.toBeNull()

    expect(readdirSync(join(rootB3, "nix/store/.links")).sort()).toEqual(readdirSync(join(rootNix, "nix/store/.links")).sort())
    expect(linkMap(join(rootB3, "nix/store"))).toEqual(linkMap(join(rootNix, "nix/store")))
    expect(result.filesLinked).toBe(Number(nixFreed![2]))
    expect((result.bytesFreed / (1024 * 1024)).toFixed(2)).toBe(nixFreed![1])
    expect(result.filesLinked).toBeGreaterThan(0)
    expect(warnings).toEqual([])
    // the contents are untouched (Nix checks every path's NAR hash) and optimising again links nothing
    nix("nix-store", ["--store", rootB3, "--verify", "--check-contents"])
    expect((yield* store.maintenance.optimise!()).filesLinked).toBe(0)

    // GC: deleting c leaves its big file's link in use by b; deleting everything empties .links
    const rootsDir = join(rootB3, "nix/var/nix/gcroots")
    const linksBefore = readdirSync(join(rootB3, "nix/store/.links")).length
    for (const p of paths.slice(0, 2)) spawnSync("ln", ["-s", StorePath.print(p), join(rootsDir, StorePath.baseName(p))])
    const gc1 = yield* store.maintenance.collectGarbage({ ownTempRoots: false })
    expect([...gc1.deleted].sort()).toEqual(paths.slice(2).map((p) => StorePath.print(p)).sort())
    expect(readdirSync(join(rootB3, "nix/store/.links")).length).toBe(linksBefore)
    for (const name of readdirSync(rootsDir)) if (name !== "auto") spawnSync("rm", [join(rootsDir, name)])
    yield* store.maintenance.collectGarbage({ ownTempRoots: false })
    expect(readdirSync(join(rootB3, "nix/store/.links"))).toEqual([])
  })))

  it.effect("through b3 daemon: nix-store --optimise, and auto-optimise-store from a trusted client only", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* scratch
    const root = join(dir, "r")
    const src = join(dir, "src")
    for (const name of ["one", "two", "three", "four"]) {
      mkdirSync(join(src, name), { recursive: true })
      writeFileSync(join(src, name, "file"), "same everywhere\n")
    }
    const inode = (storePath: string) => lstatSync(join(root, storePath, "file")).ino
    const add = (uri: string, name: string, options: ReadonlyArray<string> = []) =>
      nix("nix-store", ["--store", uri, "--add", join(src, name), ...options])

    const trusted = yield* startB3Daemon(root, join(dir, "trusted.sock"), ["--trust", "all"])
    const one = add(trusted.uri, "one", ["--option", "auto-optimise-store", "true"])
    const two = add(trusted.uri, "two", ["--option", "auto-optimise-store", "true"])
    expect(inode(one)).toBe(inode(two))
    expect(lstatSync(join(root, one, "file")).nlink).toBe(3)
    const three = add(trusted.uri, "three")
    expect(inode(three)).not.toBe(inode(one))

    const untrusted = yield* startB3Daemon(root, join(dir, "untrusted.sock"), ["--trust", "none"])
    const four = add(untrusted.uri, "four", ["--option", "auto-optimise-store", "true"])
    expect(inode(four)).not.toBe(inode(one))

    const optimised = spawnSync("nix-store", ["--store", untrusted.uri, "--optimise"], { env: nixEnv })
    expect(optimised.status, optimised.stderr.toString()).toBe(0)
    expect(freedLine.exec(optimised.stderr.toString())?.[2]).toBe("2")
    for (const p of [two, three, four]) expect(inode(p)).toBe(inode(one))
    nix("nix-store", ["--store", root, "--verify", "--check-contents"])
  })))
})
