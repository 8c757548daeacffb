/**
 * Hostile clients of `b3 daemon`: garbage, a truncated frame, an oversized length, a NAR whose hash
 * is wrong. Each costs only its own connection (or op): the daemon stays up, a client connected
 * all along keeps being served, and nothing half-received is registered or left in the store.
 */
import { Effect, Exit, Result, Scope } from "effect"
import { connect, type Socket } from "node:net"
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import { b3Bin } from "../support/b3.ts"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { Wire, Worker } from "../../src/core/wire/index.ts"
import { encode, endFrame, frameHeader } from "../../src/core/wire/encoder.ts"
import * as Tree from "../../src/nar/tree.ts"
import { readableChunkSource, WireReader } from "../../src/io/wire-io.ts"
import type { PathInfo } from "../../src/core/path-info.ts"
import { startB3Daemon, type RunningDaemon } from "../support/daemons.ts"
import { open } from "../support/stores.ts"
import { makeScratch, nix, removeScratch } from "../support/nix.ts"

let scope: Scope.Closeable
let dir: string
let daemon: RunningDaemon

beforeAll(async () => {
  dir = makeScratch("b3-bad-")
  scope = Effect.runSync(Scope.make())
  daemon = await Effect.runPromise(Scope.provide(scope)(startB3Daemon(join(dir, "r"), join(dir, "socket"), ["--trust", "all"])))
})
afterAll(async () => {
  if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  if (dir) removeScratch(dir)
})

interface Raw { readonly socket: Socket; readonly reader: WireReader; readonly send: (b: Uint8Array) => void; readonly closed: Promise<void> }

const rawConnect = () => new Promise<Raw>((resolve, reject) => {
  const socket = connect(daemon.socket)
  socket.once("error", reject)
  const closed = new Promise<void>((r) => socket.once("close", () => r()))
  socket.once("connect", () => resolve({ socket, reader: new WireReader(readableChunkSource(socket)), send: (b) => { socket.write(b) }, closed }))
})

const run = <A>(reader: WireReader, d: Parameters<WireReader["run"]>[0]) => Effect.runPromise(reader.run(d) as Effect.Effect<A, unknown>)

/** The handshake of a client of protocol 1.`minor` (Nix 2.8: 34); leaves the connection ready for ops. */
const handshake = async (raw: Raw, minor = 34) => {
  raw.send(encode((w) => w.u64(Worker.WORKER_MAGIC_1)))
  expect(await run(raw.reader, Wire.u64())).toBe(Worker.WORKER_MAGIC_2)
  expect(await run(raw.reader, Wire.u64())).toBe(Worker.PROTOCOL_VERSION)
  raw.send(encode((w) => { w.u64(0x100 | minor); if (minor >= 14) w.u64(0); if (minor >= 11) w.u64(0) }))
  if (minor >= 33) await run(raw.reader, Wire.string("version"))
  expect(await stderrUntilEnd(raw, minor)).toEqual({ _tag: "Last" })
}

/** Stderr messages up to LAST or ERROR; STDERR_READ requests are answered from `source`. */
const stderrUntilEnd = async (raw: Raw, minor = 34, source?: { data: Uint8Array; at: number }): Promise<Worker.StderrMessage> => {
  while (true) {
    const m = await run<Worker.StderrMessage>(raw.reader, Worker.stderrMessage(minor))
    if (m._tag === "Read" && source) {
      const piece = source.data.subarray(source.at, source.at + m.length)
      source.at += piece.length
      raw.send(encode((w) => w.string(piece)))
      continue
    }
    if (m._tag === "Last" || m._tag === "Error") return m
  }
}

/** A second client, connected before the hostile one and used after it. */
const withBystander = async (hostile: () => Promise<void>) => {
  const bystander = await rawConnect()
  await handshake(bystander)
  await hostile()
  bystander.send(encode((w) => w.u64(Worker.Op.IsValidPath).string(`/nix/store/${"0".repeat(32)}-x`)))
  expect(await stderrUntilEnd(bystander)).toEqual({ _tag: "Last" })
  expect(await run(bystander.reader, Wire.bool())).toBe(false)
  bystander.socket.destroy()
  // and new clients are served
  nix("nix", ["store", "ping", "--store", daemon.uri]) // throws unless it succeeds
}

const sample = (text: string) => {
  const nar = Result.getOrThrow(Tree.toNar(Tree.regular(new TextEncoder().encode(text))))
  const hash = Hash.hashBytes("sha256", text)
  const path = StorePath.makeFixedOutput("flat", hash, "sample", {})
  const info: PathInfo = { path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: [], ca: { _tag: "Fixed", method: "flat", hash } }
  return { nar, info }
}

const addToStoreNarHeader = (info: PathInfo) => encode((w) => {
  w.u64(Worker.Op.AddToStoreNar)
  Worker.writePathInfo(w, info, "/nix/store", 34, true)
  w.bool(false).bool(true)
})

const isValid = (path: StorePath.StorePath) => Effect.runPromise(Effect.scoped(Effect.flatMap(open(daemon.uri), (s) => s.read.isValidPath(path))))

const leftovers = (name: string) => readdirSync(join(dir, "r", "nix", "store")).filter((n) => n.includes(name))

describe("b3 daemon against hostile clients", () => {
  it("garbage instead of the handshake closes that connection only", async () => {
    await withBystander(async () => {
      const raw = await rawConnect()
      raw.send(new Uint8Array(4096).map((_, i) => (i * 7919) & 0xff))
      await raw.closed
    })
  })

  it("garbage after the handshake: an unknown op is reported, then that connection closes", async () => {
    await withBystander(async () => {
      const raw = await rawConnect()
      await handshake(raw)
      raw.send(encode((w) => w.u64(0xdead_beef)))
      const m = await stderrUntilEnd(raw)
      expect(m._tag === "Error" && m.message).toContain("invalid operation")
      await raw.closed
    })
  })

  it("an oversized string length gets an error, allocates nothing, and closes that connection", async () => {
    await withBystander(async () => {
      const raw = await rawConnect()
      await handshake(raw)
      raw.send(encode((w) => w.u64(Worker.Op.IsValidPath).u64(2n ** 60n)))
      const m = await stderrUntilEnd(raw)
      expect(m._tag === "Error" && m.message).toContain("larger than the limit")
      await raw.closed
    })
  })

  it("a truncated frame (the client hangs up mid-NAR) registers nothing and leaves nothing in the store", async () => {
    const { nar, info } = sample("truncated upload ".repeat(2000))
    await withBystander(async () => {
      const raw = await rawConnect()
      await handshake(raw)
      raw.send(addToStoreNarHeader(info))
      raw.send(frameHeader(nar.length))
      raw.send(nar.subarray(0, nar.length >> 1))
      raw.socket.end()
      await raw.closed
    })
    expect(await isValid(info.path)).toBe(false)
    expect(leftovers(info.path.hashPart)).toEqual([])
  })

  it("a NAR with the wrong hash fails that op only; the connection goes on and nothing is registered", async () => {
    const { nar, info } = sample("declared with another hash")
    const lying: PathInfo = { ...info, narHash: Hash.hashBytes("sha256", "something else") }
    await withBystander(async () => {
      const raw = await rawConnect()
      await handshake(raw)
      raw.send(addToStoreNarHeader(lying))
      raw.send(frameHeader(nar.length))
      raw.send(nar)
      raw.send(endFrame)
      const m = await stderrUntilEnd(raw)
      expect(m._tag === "Error" && m.message).toMatch(/hash/i)
      // the same connection still works: the honest upload succeeds
      raw.send(addToStoreNarHeader(info))
      raw.send(frameHeader(nar.length))
      raw.send(nar)
      raw.send(endFrame)
      expect(await stderrUntilEnd(raw)).toEqual({ _tag: "Last" })
      raw.socket.destroy()
    })
    expect(await isValid(info.path)).toBe(true)
  })

  it("a framed upload whose frames run past the NAR fails with an error, and the connection stays in step", async () => {
    const { nar, info } = sample("with trailing junk")
    await withBystander(async () => {
      const raw = await rawConnect()
      await handshake(raw)
      const junk = new Uint8Array(100).fill(7)
      raw.send(addToStoreNarHeader({ ...info, path: StorePath.makeFixedOutput("flat", Hash.hashBytes("sha256", "z"), "junk", {}) }))
      raw.send(frameHeader(nar.length + junk.length))
      raw.send(nar)
      raw.send(junk)
      raw.send(endFrame)
      const m = await stderrUntilEnd(raw)
      expect(m._tag).toBe("Error")
      raw.send(encode((w) => w.u64(Worker.Op.IsValidPath).string(StorePath.print(info.path))))
      expect(await stderrUntilEnd(raw)).toEqual({ _tag: "Last" })
      await run(raw.reader, Wire.bool())
      raw.socket.destroy()
    })
    expect(leftovers("junk")).toEqual([])
  })

  it("stopping the daemon mid-upload (SIGTERM) closes its socket and connections and registers nothing", async () => {
    const local = Effect.runSync(Scope.make())
    const root = join(dir, "interrupted")
    const socket = join(dir, "socket-int")
    const d = await Effect.runPromise(Scope.provide(local)(startB3Daemon(root, socket, ["--trust", "all"])))
    const { nar, info } = sample("interrupted upload ".repeat(200_000))
    const raw = await new Promise<Raw>((resolve, reject) => {
      const s = connect(socket)
      s.once("error", reject)
      const closed = new Promise<void>((r) => s.once("close", () => r()))
      s.once("connect", () => resolve({ socket: s, reader: new WireReader(readableChunkSource(s)), send: (b) => { s.write(b) }, closed }))
    })
    await handshake(raw)
    raw.send(addToStoreNarHeader(info))
    raw.send(frameHeader(nar.length))
    raw.send(nar.subarray(0, nar.length >> 1))
    const exited = new Promise<number | null>((resolve) => d.process.once("exit", (code) => resolve(code)))
    d.process.kill("SIGTERM")
    expect(await exited).toBe(130)
    await raw.closed
    expect(existsSync(socket)).toBe(false)
    await Effect.runPromise(Scope.close(local, Exit.void))
    // the store, opened afresh, does not have it, nor any piece of it
    const valid = spawnSync(b3Bin, ["path-info", "--store", root, StorePath.print(info.path)])
    expect(valid.status).toBe(3)
    expect(readdirSync(join(root, "nix", "store")).filter((n) => n.includes(info.path.hashPart) || (n.startsWith(".") && n !== ".links"))).toEqual([])
    const temporaries = join(root, "nix", "var", "nix", "b3-tmp")
    expect(existsSync(temporaries) ? readdirSync(temporaries) : []).toEqual([])
  })

})

describe("b3 daemon and older clients", () => {
  for (const [minor, how] of [[21, "NARs asked for with STDERR_READ (Nix 2.3)"], [17, "bare NARs"]] as const) {
    it(`protocol 1.${minor}: adds a path (${how}) and reads its info in the older format`, async () => {
      const { nar, info } = sample(`from an old client ${minor}`)
      const raw = await rawConnect()
      await handshake(raw, minor)
      raw.send(encode((w) => {
        w.u64(Worker.Op.AddToStoreNar)
        Worker.writePathInfo(w, info, "/nix/store", minor, true)
        if (minor < 16) w.bool(false).u64(0).string("").string("")
        w.bool(false).bool(true)
      }))
      if (minor < 21) raw.send(nar)
      expect(await stderrUntilEnd(raw, minor, { data: nar, at: 0 })).toEqual({ _tag: "Last" })
      raw.send(encode((w) => w.u64(Worker.Op.QueryPathInfo).string(StorePath.print(info.path))))
      expect(await stderrUntilEnd(raw, minor)).toEqual({ _tag: "Last" })
      expect(await run(raw.reader, Wire.bool())).toBe(true)
      const back = await run<Worker.RawPathInfo>(raw.reader, Worker.rawPathInfo(minor))
      expect(back.narSize).toBe(nar.length)
      expect(back.ca).toBe(`fixed:${Hash.print(info.ca!.hash, "base32")}`)
      raw.socket.destroy()
      expect(await isValid(info.path)).toBe(true)
    })
  }
})
