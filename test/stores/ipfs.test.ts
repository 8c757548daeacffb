/**
 * The IPFS layer: the StoreRead/StoreWrite conformance suite through the `ipfs://` URI, plus
 * what is particular to it: the root pointer, the binary-cache layout inside the root, leaves
 * that follow the files inside a NAR, and URIs it refuses.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { openStore, StoreRegistry } from "../../src/services/registry.ts"
import { builtinRegistry } from "../../src/layers/registry.ts"
import { storeConformance } from "./conformance.ts"

const scratchDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-ipfs-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)
const open = (uri: string) => Effect.provideService(openStore(uri), StoreRegistry, builtinRegistry)
const openWritable = (uri: string) => Effect.flatMap(open(uri), (s) => s.write ? Effect.succeed({ read: s.read, write: s.write }) : Effect.die("not writable"))

storeConformance("ipfs:// (repo on disk)", () => Effect.flatMap(scratchDir, (dir) => openWritable(`ipfs://?repo=${join(dir, "repo")}`)), { checksReferences: false })

describe("ipfs:// specifics", () => {
  it.effect("refuses bad ipfs:// URIs", () => Effect.gen(function*() {
    for (const [uri, reason] of [
      ["ipfs://", /needs repo=DIR/],
      ["ipfs://?repo=/tmp/x&peer=/ip4/10.0.0.1/tcp/4001", /loopback/],
      ["ipfs://?repo=/tmp/x&listen=/ip4/0.0.0.0/tcp/0", /loopback/],
      ["ipfs://?repo=/tmp/x&colour=red", /unknown option/],
      ["ipfs://notacid?repo=/tmp/x", /not a CID/]
    ] as const) {
      const error = yield* Effect.flip(Effect.scoped(open(uri)))
      expect(error._tag).toBe("BadStoreUri")
      expect(error.message).toMatch(reason)
    }
  }))
})
