import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { compressions } from "../../src/io/compression.ts"
import { startPutServer } from "../support/put-server.ts"
import { storeConformance, uriStore } from "./store-suite.ts"

const scratchDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-cache-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

for (const compression of compressions) {
  storeConformance(`file:// binary cache (${compression})`, () =>
    uriStore(Effect.map(scratchDir, (dir) => `file://${dir}?compression=${compression}`)), { checksReferences: false })
}

storeConformance("http:// binary cache (PUT, zstd)", () => uriStore(Effect.gen(function*() {
  const dir = yield* scratchDir
  const server = yield* Effect.acquireRelease(Effect.promise(() => startPutServer(join(dir, "served"))), (s) => Effect.promise(() => s.close()))
  return `${server.url}?compression=zstd`
})), { checksReferences: false })
