/**
 * A process the crash test kills: it works on a chunk store (chunked+file, SQLite index) and says
 * on stdout what it is starting, so the test can SIGKILL it in the middle. Paths are made from
 * their names alone (`crashPath`), so whoever reads the store later can tell what each valid
 * path must contain.
 *
 *   node chunked-crash-worker.ts DIR SEED ingest|delete|repack
 */
import { Effect, Result, Stream } from "effect"
import { readdirSync } from "node:fs"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import { openFileChunkStore } from "../../src/layers/chunked/opener.ts"

export const crashStoreOptions = { chunking: { min: 1024, avg: 4096, max: 16384 }, packSize: 128 * 1024, repackThreshold: 0.9 }

const storeDir = StorePath.defaultStoreDir

/** Pseudo-random letters (16 of them: compressible, so that similar chunks are deltas with delta-incompressible off, the default). */
const bytesOf = (seed: string, n: number) => {
  const out = new Uint8Array(n)
  let x = Hash.hashBytes("sha256", seed).bytes.reduce((a, b) => (a * 31 + b) >>> 0, 7) || 1
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; out[i] = 0x61 + (x & 15) }
  return out
}

/** The path called `name`, its references (not in the store: a chunk store does not check them) and its NAR. */
export const crashPath = (name: string) => {
  const self = StorePath.makeText(name, Hash.hashBytes("sha256", `self ${name}`), [], storeDir)
  const refs = [0, 1].map((k) => StorePath.makeText(`dep${k}`, Hash.hashBytes("sha256", `dep ${name} ${k}`), [], storeDir))
  const h = Hash.hashBytes("sha256", name).bytes
  // content shared between paths (one of four base blocks) around bytes of its own
  const shared = bytesOf(`base ${h[0]! % 4}`, 60_000 + (h[1]! % 4) * 30_000)
  // a few bytes of the shared block changed, at places of its own: chunks similar to other paths'
  // chunks but not the same, stored as deltas against them (bases shared between paths)
  for (let k = 0; k < 3; k++) shared[(h[3 + k]! * 211 + k * 17_011) % shared.length] ^= 0xff
  const own = bytesOf(`own ${name}`, 5_000 + h[2]! * 400)
  const mention = [self, ...refs].map((p) => StorePath.print(p, storeDir)).join(":")
  const nar = Result.getOrThrow(Tree.toNar(Tree.directory({
    lib: Tree.regular(Buffer.concat([shared.subarray(0, 20_000), Buffer.from(`RPATH=${mention}\0`), shared.subarray(20_000), own])),
    "x.pc": Tree.regular(`prefix=${StorePath.print(self, storeDir)}\nRequires: ${mention}\n`)
  })))
  return { path: self, nar, info: { path: self, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [...refs, self].sort(StorePath.compare), signatures: [] } }
}

const say = (line: string) => Effect.sync(() => { process.stdout.write(line + "\n") })

if (process.argv[1]?.endsWith("chunked-crash-worker.ts")) {
  const [dir, seed, mode] = process.argv.slice(2)
  const program = Effect.scoped(Effect.gen(function*() {
    const store = yield* openFileChunkStore(dir!, crashStoreOptions)
    const m = store.maintenance!
    if (mode === "ingest") {
      // a few paths at once, so several ingests share packs
      yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => `c${seed}x${i}`), (name) => Effect.gen(function*() {
        const { info, nar } = crashPath(name)
        yield* say(`adding ${name}`)
        yield* store.write!.addToStore(info, Stream.make(nar.subarray(0, 7000), nar.subarray(7000)))
        yield* say(`added ${name}`)
      }), { concurrency: 3, discard: true })
    } else {
      const valid = readdirSync(`${dir}/paths`).filter((f) => f.endsWith(".b3p")).map((f) => f.slice(0, 32)).sort()
      const doomed: Array<StorePath.StorePath> = []
      for (const [i, hashPart] of valid.entries()) {
        if ((i + Number(seed)) % 3 !== 0) continue
        const path = yield* store.read.queryPathFromHashPart(hashPart)
        if (path._tag === "Some") doomed.push(path.value)
      }
      yield* say(`deleting ${doomed.length}`)
      for (const p of doomed) yield* Effect.ignore(m.deletePaths!([p]))
      yield* say(mode === "repack" ? "repacking" : "collecting")
      if (mode === "repack") yield* m.repack!()
      else yield* m.collectGarbage()
    }
    yield* say("done")
  }))
  Effect.runPromise(program).then(() => process.exit(0), (e) => { process.stderr.write(`${e}\n`); process.exit(1) })
}
