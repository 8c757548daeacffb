import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { makeBinaryCacheStore } from "../../src/layers/binary-cache/binary-cache-store.ts"
import { makeFileBlobs } from "../../src/layers/binary-cache/file-blobs.ts"
import { makeHttpBlobs } from "../../src/layers/binary-cache/http-blobs.ts"
import { compressions } from "../../src/io/compression.ts"
import { startPutServer } from "../support/put-server.ts"
import { storeConformance } from "./store-suite.ts"

const scratchDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-cache-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

for (const compression of compressions) {
  storeConformance(`file:// binary cache (${compression})`, () => Effect.flatMap(scratchDir, (dir) =>
    makeBinaryCacheStore(makeFileBlobs(`file://${dir}`, dir), { compression, writable: true })), { checksReferences: false })
}

storeConformance("http:// binary cache (PUT, zstd)", () => Effect.gen(function*() {
  const dir = yield* scratchDir
  const server = yield* Effect.acquireRelease(Effect.promise(() => startPutServer(join(dir, "served"))), (s) => Effect.promise(() => s.close()))
  const blobs = yield* makeHttpBlobs(server.url, server.url, { spoolDir: join(dir, "spool") })
  return yield* makeBinaryCacheStore(blobs, { compression: "zstd", writable: true })
}), { checksReferences: false })
