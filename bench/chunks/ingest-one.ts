/**
 * One ingest of a NAR file into a fresh chunk store (chunked+file, SQLite index), with the sources
 * of a given checkout: to compare two versions of the code on the same machine (A/B), each run in
 * a process of its own, alternating. Prints one JSON line: seconds, CPU seconds of all threads and
 * of the main thread, MB/s.
 *
 *   node --initial-old-space-size=128 bench/chunks/ingest-one.ts ROOT NAR ['{"delta":false}']
 *
 * ROOT: a checkout (its src/ is imported; give it this one's node_modules, e.g. a symlink, so that
 * both use the same Effect). NAR: a NAR file of one regular file or tree (bench/chunks' big path:
 * `bigNar` in ceilings.ts); its sha256 is cached beside it (NAR.sha256). The options are
 * ChunkedStoreOptions as JSON.
 */
import { Effect } from "effect"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import type { PathInfo } from "../../src/core/path-info.ts"

const [root, narFile, optionsJson] = process.argv.slice(2)
if (!root || !narFile) {
  console.error("usage: ingest-one.ts ROOT NAR [OPTIONS-JSON]")
  process.exit(2)
}
const from = (path: string) => import(join(resolve(root), path))
// typed as this checkout's modules (the other checkout's have the same shape, or this fails at run time)
const { openFileChunkStore } = await from("src/layers/chunked/opener.ts") as typeof import("../../src/layers/chunked/opener.ts")
const { readFileStream } = await from("src/io/file-stream.ts") as typeof import("../../src/io/file-stream.ts")
const Hash = await from("src/core/hash.ts") as typeof import("../../src/core/hash.ts")
const StorePath = await from("src/core/store-path.ts") as typeof import("../../src/core/store-path.ts")

const cached = narFile + ".sha256"
if (!existsSync(cached)) writeFileSync(cached, Buffer.from(Hash.hashBytes("sha256", readFileSync(narFile)).bytes).toString("hex"))
const narHash = Hash.make("sha256", new Uint8Array(Buffer.from(readFileSync(cached, "utf8"), "hex")))
const info: PathInfo = { path: StorePath.makeFixedOutput("recursive", narHash, "big", {}), narHash, narSize: statSync(narFile).size, references: [], signatures: [] }

const dir = mkdtempSync(join(tmpdir(), "b3-ingest-one-"))
try {
  const r = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const store = yield* openFileChunkStore(dir, JSON.parse(optionsJson ?? "{}"))
    const t = performance.now()
    const c0 = process.cpuUsage()
    const m0 = process.threadCpuUsage()
    yield* store.write!.addToStore(info, readFileStream(narFile, (e) => e))
    const c = process.cpuUsage(c0)
    const m = process.threadCpuUsage(m0)
    return { seconds: (performance.now() - t) / 1000, cpu: (c.user + c.system) / 1e6, main: (m.user + m.system) / 1e6 }
  })))
  console.log(JSON.stringify({ ...r, mbs: info.narSize / 1e6 / r.seconds }))
} finally {
  rmSync(dir, { recursive: true, force: true })
}
