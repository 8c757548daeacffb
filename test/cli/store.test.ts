/** The store-facing CLI: help everywhere, JSON shapes, and exit codes that tell failures apart. */
import { afterAll, describe, expect, it } from "vitest"
import { mkdirSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { b3, runB3 } from "../support/b3.ts"
import { addBusybox, hostBusybox } from "../support/busybox.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const scratch = makeScratch()
afterAll(() => removeScratch(scratch))

const oneLineError = (result: { stderr: string }) => {
  const lines = result.stderr.trim().split("\n")
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^b3: /)
  expect(result.stderr).not.toMatch(/\n\s+at /)
}

describe("b3 CLI: stores", () => {
  it("store add --json and path-info --json give machine-readable results", () => {
    const root = join(scratch, "r")
    const dir = join(scratch, "src")
    mkdirSync(dir)
    writeFileSync(join(dir, "f"), "x")
    const added = JSON.parse(b3(["store", "add", "--json", "--store", root, dir])) as { path: string; narHash: string; narSize: number }
    expect(added.path).toMatch(/^\/nix\/store\/[0-9a-z]{32}-src$/)
    expect(added.narHash).toMatch(/^sha256-/)
    const infos = JSON.parse(b3(["path-info", "--json", "--store", root, added.path])) as Array<Record<string, unknown>>
    expect(infos).toHaveLength(1)
    expect(Object.keys(infos[0]!).sort()).toEqual(["ca", "narHash", "narSize", "path", "references", "registrationTime"])
    const gc = JSON.parse(b3(["store", "gc", "--json", "--dry-run", "--store", root])) as { dryRun: boolean; deleted: Array<string> }
    expect(gc).toMatchObject({ dryRun: true, deleted: [added.path] })
  })

  it("store add-tool adds a static tool as NAME/bin/TOOL with links, at the path nix-store --add-fixed --recursive gives that tree", () => {
    const root = join(scratch, "tools")
    const ours = b3(["store", "add-tool", "--store", root, "--name", "bb", "--link", "sh", hostBusybox])
    expect(ours).toBe(addBusybox(join(scratch, "tools-nix")))
    expect(readlinkSync(join(root, ours, "bin", "sh"))).toBe("busybox")
    expect(statSync(join(root, ours, "bin", "busybox")).mode & 0o777).toBe(0o555)
    expect(readdirSync(join(root, ours))).toEqual(["bin"])
    // the name defaults to the file's; a name with a slash is refused
    expect(b3(["store", "add-tool", "--store", root, hostBusybox])).toMatch(/^\/nix\/store\/[0-9a-z]{32}-busybox$/)
    const bad = runB3(["store", "add-tool", "--store", root, "--link", "../sh", hostBusybox])
    expect(bad.status).toBe(2)
    oneLineError(bad)
    const dir = runB3(["store", "add-tool", "--store", root, scratch])
    expect(dir.status).toBe(2)
    oneLineError(dir)
  })

  it("exit codes: 2 bad input, 3 not found, 4 mismatch", () => {
    const unknownScheme = runB3(["path-info", "--store", "ftp://example", "/nix/store/00000000000000000000000000000000-x"])
    expect(unknownScheme.status).toBe(2)
    expect(unknownScheme.stderr).toMatch(/unknown store type 'ftp'/)
    oneLineError(unknownScheme)
    const badOption = runB3(["path-info", "--store", "local?bogus=1", "/nix/store/00000000000000000000000000000000-x"])
    expect(badOption.status).toBe(2)
    oneLineError(badOption)
    const badPath = runB3(["path-info", "--store", "memory://", "/nix/store/not-a-store-path"])
    expect(badPath.status).toBe(2)
    oneLineError(badPath)
    const missing = runB3(["path-info", "--store", "memory://", "/nix/store/00000000000000000000000000000000-x"])
    expect(missing.status).toBe(3)
    oneLineError(missing)
    const missingFile = runB3(["store", "add", "--store", "memory://", join(scratch, "does-not-exist")])
    expect(missingFile.status).toBe(3)
    oneLineError(missingFile)
    const readOnly = runB3(["copy", "--from", "memory://", "--to", "http://127.0.0.1:9/?read-only=1", "/nix/store/00000000000000000000000000000000-x"])
    expect(readOnly.status).not.toBe(0)
    oneLineError(readOnly)
  })

  it("config show reports where settings come from", () => {
    const result = runB3(["config", "show", "--json"], { env: { ...process.env, B3_STORE: "memory://", B3_TRUSTED_PUBLIC_KEYS: "k:AAAA" } })
    expect(result.status).toBe(0)
    const config = JSON.parse(result.stdout) as { store: string; trustedPublicKeys: Array<string>; sources: Record<string, string> }
    expect(config.store).toBe("memory://")
    expect(config.trustedPublicKeys).toEqual(["k:AAAA"])
    expect(config.sources.store).toBe("B3_STORE")
  })
})
