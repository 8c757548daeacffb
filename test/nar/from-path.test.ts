/**
 * Dumping from the file system: typed errors for what a NAR cannot hold, consumers that stop
 * early, and worker threads that never keep the process alive (children that must exit by
 * themselves, with the right answer).
 */
import { Effect, Stream } from "effect"
import { spawnSync } from "node:child_process"
import { createServer } from "node:net"
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"
import * as Hash from "../../src/core/hash.ts"
import { FileNotFound, NarIoError, UnsupportedFileType } from "../../src/nar/fs/errors.ts"
import { forEachNarChunk, narDigestOfPath, narFromPath } from "../../src/nar/fs/dump-path.ts"
import { makeScratch, nix, nixBytes, removeScratch } from "../support/nix.ts"
import { collectBytes } from "./support.ts"

const scratch = makeScratch("b3-nar-fs-")
afterAll(() => removeScratch(scratch))

const failureOf = async <A, E>(effect: Effect.Effect<A, E>) => {
  const result = await Effect.runPromise(Effect.result(effect))
  return result._tag === "Failure" ? result.failure : undefined
}

/** A tree big enough that dumping it brings in the worker threads. */
const largeTree = (() => {
  const root = join(scratch, "large")
  for (let d = 0; d < 40; d++) {
    mkdirSync(join(root, `d${d}`), { recursive: true })
    for (let i = 0; i < 100; i++) writeFileSync(join(root, `d${d}`, `f${i}`), `${d}:${i}\n`.repeat(i))
  }
  return root
})()

describe("narFromPath / narDigestOfPath: what cannot be dumped", () => {
  it("a missing path (or one below a file) is FileNotFound", async () => {
    writeFileSync(join(scratch, "plain"), "x")
    for (const path of [join(scratch, "missing"), join(scratch, "plain", "below")]) {
      expect(await failureOf(narDigestOfPath(path))).toBeInstanceOf(FileNotFound)
      expect(await failureOf(Stream.runDrain(narFromPath(path)))).toBeInstanceOf(FileNotFound)
    }
  })

  it("FIFOs and sockets, as the root or inside a tree, are UnsupportedFileType naming the path and kind", async () => {
    const dir = join(scratch, "special")
    mkdirSync(join(dir, "sub"), { recursive: true })
    writeFileSync(join(dir, "a-file"), "fine")
    spawnSync("mkfifo", [join(dir, "sub", "pipe")])
    const socketPath = join(scratch, "sock")
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(socketPath, resolve))
    try {
      const cases: Array<[string, string, string]> = [
        [dir, join(dir, "sub", "pipe"), "FIFO"],
        [join(dir, "sub", "pipe"), join(dir, "sub", "pipe"), "FIFO"],
        [socketPath, socketPath, "socket"]
      ]
      for (const [root, path, kind] of cases) {
        for (const workers of [0, 1]) {
          const error = await failureOf(narDigestOfPath(root, "sha256", { workers }))
          expect(error).toBeInstanceOf(UnsupportedFileType)
          expect(error).toMatchObject({ path, kind })
          expect(await failureOf(Stream.runDrain(narFromPath(root, { workers })))).toMatchObject({ _tag: "UnsupportedFileType", path, kind })
        }
      }
      // Nix refuses them too
      expect(() => nix("nix-store", ["--dump", dir])).toThrow()
    } finally {
      server.close()
    }
  })

  it("a symlink root is dumped as the link (even dangling), never followed", async () => {
    const link = join(scratch, "link-root")
    symlinkSync(join(scratch, "nowhere"), link)
    expect((await collectBytes(narFromPath(link))).equals(nixBytes("nix-store", ["--dump", link]))).toBe(true)
  })
})

describe("consumers", () => {
  it("forEachNarChunk stops at the consumer's error and fails with it", async () => {
    let seen = 0
    const stop = new NarIoError({ path: "out", operation: "writing", code: "EPIPE", reason: "closed" })
    const error = await failureOf(forEachNarChunk(largeTree, () => (++seen === 2 ? stop : undefined)))
    expect(error).toBe(stop)
    expect(seen).toBe(2)
  })

  it("forEachNarChunk dumps running at once and one after another (their read buffers pooled and reused) each give their own exact NAR, also after dumps stopped early", async () => {
    const files = [1, 2, 3].map((k) => {
      const file = join(scratch, `big${k}`)
      writeFileSync(file, Buffer.alloc((3 << 20) + k * 12345, k))
      return { file, hash: nix("nix-hash", ["--type", "sha256", file]) }
    })
    const dump = (file: string, chunkBytes: number | undefined, stopAfter?: number) => {
      const hasher = Hash.hasher("sha256")
      let chunks = 0
      // the consumer hands each chunk back later, as a socket does
      const run = forEachNarChunk(file, (chunk) => new Promise<"stop" | undefined>((resolve) => {
        hasher.update(chunk)
        setImmediate(() => resolve(++chunks === stopAfter ? "stop" : undefined))
      }), chunkBytes === undefined ? {} : { chunkBytes })
      return Effect.runPromise(Effect.catch(run, (e) => e === "stop" ? Effect.void : Effect.fail(e))).then(() => Hash.encode(hasher.digest(), "base16"))
    }
    for (const chunkBytes of [undefined, 64 * 1024]) {
      for (let round = 0; round < 3; round++) {
        await Promise.all(files.map(({ file }) => dump(file, chunkBytes, 2)))
        const hashes = await Promise.all([...files, ...files].map(({ file }) => dump(file, chunkBytes)))
        expect(hashes).toEqual([...files, ...files].map(({ hash }) => hash))
      }
    }
  })

  it("taking a few chunks of a large dump and dropping the rest works, and the next dump is whole", async () => {
    const first = await Effect.runPromise(Stream.runCollect(Stream.take(narFromPath(largeTree), 2)))
    expect(first.length).toBe(2)
    const digest = await Effect.runPromise(narDigestOfPath(largeTree))
    expect(Hash.encode(digest.hash, "base16")).toBe(nix("nix-hash", ["--type", "sha256", largeTree]))
  })
})

describe("worker threads never keep the process alive", () => {
  const node = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url))
  const fromPath = fileURLToPath(new URL("../../src/nar/fs/dump-path.ts", import.meta.url))
  const effect = fileURLToPath(new URL("../../node_modules/effect/dist/index.js", import.meta.url))
  /** Runs a module that uses the dumper and then just ends: it must exit by itself. */
  const child = (body: string) => spawnSync(node, ["--input-type=module", "-e", `
    import { Effect, Fiber, Stream } from ${JSON.stringify(effect)}
    import { narDigestOfPath, narFromPath } from ${JSON.stringify(fromPath)}
    const tree = ${JSON.stringify(largeTree)}
    ${body}
  `], { encoding: "utf8", timeout: 120_000 })

  it("a worker runs directory jobs exactly as this thread does, also in a host run with --input-type=module", async () => {
    const compare = `
      import * as fs from "node:fs"
      import { WorkerPool } from ${JSON.stringify(fileURLToPath(new URL("../../src/nar/fs/worker-pool.ts", import.meta.url)))}
      import { directoryJobRunner } from ${JSON.stringify(fileURLToPath(new URL("../../src/nar/fs/dir-job.ts", import.meta.url)))}
      import { NarWriter } from ${JSON.stringify(fileURLToPath(new URL("../../src/nar/nar-writer.ts", import.meta.url)))}
      const limits = { smallFileMax: 1024, jobBytes: 4096, jobEntries: 50 }
      const pool = new WorkerPool(1, limits)
      pool.start()
      await pool.whenReady()
      const job = { dir: ${JSON.stringify(join(largeTree, "d7"))}, first: true }
      const bytes = (r) => Buffer.concat(r.segments.filter((s) => s instanceof Uint8Array)).toString("hex")
      const there = await pool.run(job)
      const here = directoryJobRunner(fs, NarWriter, limits)(job)
      console.log(pool.hasIdle, there.failure === undefined, bytes(there) === bytes(here), there.rest?.names.length === here.rest?.names.length)
    `
    const r = spawnSync(node, ["--input-type=module", "-e", compare], { encoding: "utf8", timeout: 120_000 })
    expect(r.stderr).toBe("")
    expect(r.stdout.trim()).toBe("true true true true")
  })

  it("after a complete digest with workers", () => {
    const r = child(`const d = await Effect.runPromise(narDigestOfPath(tree, "sha256", { workers: 2 })); console.log(d.size)`)
    expect(r.signal).toBeNull()
    expect(r.status).toBe(0)
    expect(Number(r.stdout.trim())).toBe(nixBytes("nix-store", ["--dump", largeTree]).length)
  })

  it("after a stream abandoned half-way and after an interrupted digest", () => {
    const r = child(`
      const some = await Effect.runPromise(Stream.runCollect(Stream.take(narFromPath(tree, { workers: 2 }), 3)))
      const fiber = Effect.runFork(narDigestOfPath(tree, "sha256", { workers: 1 }))
      await Effect.runPromise(Fiber.interrupt(fiber))
      console.log(some.length)
    `)
    expect(r.signal).toBeNull()
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toBe("3")
  })
})
