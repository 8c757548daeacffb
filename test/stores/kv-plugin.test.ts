/**
 * The example plugin (examples/kv-plugin: kv:///FILE.sqlite binary caches) as a user would use it:
 * registered with withPlugins and run through the store conformance suite, and named in B3_PLUGINS
 * for the CLI (copy to it, read from it).
 */
import { afterAll, describe, expect, it } from "vitest"
import { Effect, Layer } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import kvPlugin from "../../examples/kv-plugin/index.ts"
import { withPlugins } from "../../src/compose/plugins.ts"
import { builtinRegistry } from "../../src/compose/registry.ts"
import { StoreRegistry, writableStoreLayer } from "../../src/services/registry.ts"
import { b3, runB3 } from "../support/b3.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"
import { storeConformance } from "./store-suite.ts"

const scratch = makeScratch("b3-kv-plugin-")
afterAll(() => removeScratch(scratch))

const registry = Layer.succeed(StoreRegistry, withPlugins(builtinRegistry, [kvPlugin]))
let n = 0
storeConformance("kv:// (examples/kv-plugin)", () =>
  writableStoreLayer(`kv://${join(scratch, `suite-${n++}.sqlite`)}?compression=zstd`).pipe(Layer.provide(registry)), { checksReferences: false })

describe("examples/kv-plugin on the command line (B3_PLUGINS)", () => {
  const env = { ...process.env, B3_PLUGINS: fileURLToPath(new URL("../../examples/kv-plugin/index.ts", import.meta.url)) }
  it("copies a closure into a kv:// store and reads it back; without the plugin the scheme is unknown", () => {
    const src = join(scratch, "src")
    mkdirSync(src)
    writeFileSync(join(src, "a.txt"), "kv\n")
    const local = join(scratch, "local")
    const path = b3(["store", "add", "--store", local, src])
    const kv = `kv://${join(scratch, "cli.sqlite")}`
    const copied = runB3(["copy", "--from", local, "--to", kv, path], { env })
    expect(copied.stderr).toBe("copied 1 path(s), 0 already present\n")
    expect(copied.status).toBe(0)
    const info = runB3(["path-info", "--json", "--store", kv, path], { env })
    expect(info.status).toBe(0)
    expect(JSON.parse(info.stdout)[0].narHash).toBe(JSON.parse(b3(["path-info", "--json", "--store", local, path]))[0].narHash)
    const dumped = runB3(["nar", "dump", "--store", kv, path], { env })
    expect(dumped.status).toBe(0)
    expect(dumped.stdout).toBe(runB3(["nar", "dump", "--store", local, path]).stdout)
    const without = runB3(["path-info", "--store", kv, path])
    expect(without.status).toBe(2)
    expect(without.stderr).toMatch(/unknown store type 'kv'/)
  })
})

// the plugin's opener checks its URI like a built-in one
it("kv:// needs an absolute path", async () => {
  const exit = await Effect.runPromiseExit(Layer.build(writableStoreLayer("kv://relative.sqlite").pipe(Layer.provide(registry))).pipe(Effect.scoped))
  expect(String(exit)).toMatch(/expected kv:\/\/\/ABSOLUTE\/PATH\.sqlite/)
})
