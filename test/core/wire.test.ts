/**
 * The wire protocols' pure code: decoders are total and bounded (any bytes give a value or a typed
 * error, an announced 2^62-byte string allocates nothing), encodings round-trip, the NAR boundary
 * scanner finds exactly where a NAR ends whatever the chunking, and framed streams read back
 * what was framed. Fuzzed with fast-check.
 */
import { Effect, Result, Stream } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as ContentAddress from "../../src/core/content-address.ts"
import * as Derivation from "../../src/core/derivation/index.ts"
import * as Hash from "../../src/core/hash.ts"
import * as Machines from "../../src/core/machines.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { Serve, Wire, Worker, NarBoundary, WireWriter } from "../../src/core/wire/index.ts"
import { encode, endFrame, frameHeader } from "../../src/core/wire/encoder.ts"
import type { Decoder } from "../../src/core/wire/decoder.ts"
import * as Tree from "../../src/nar/tree.ts"
import { WireReader, type ChunkSource } from "../../src/io/wire-io.ts"
import { arbDump, chunked } from "../nar/support.ts"

const storeDir = "/nix/store"
const decoders: Record<string, () => Decoder<unknown>> = {
  u64: () => Wire.u64(),
  string: () => Wire.string("a string", 1024),
  strings: () => Wire.strings("strings", 100, 100),
  pathInfo: () => Worker.rawPathInfo(34),
  oldPathInfo: () => Worker.rawPathInfo(15),
  derivation: () => Worker.rawDerivation(),
  settings: () => Worker.clientSettings(34),
  stderr: () => Worker.stderrMessage(34),
  oldStderr: () => Worker.stderrMessage(20),
  buildResult: () => Worker.buildResult(),
  buildOutputs: () => Worker.buildOutputs(),
  storePaths: () => Worker.storePathStrings(),
  servePathInfo: () => Serve.servePathInfo(7),
  buildSettings: () => Serve.buildSettings(7)
}

const arbHashPart = fc.stringMatching(/^[0-9a-df-np-sv-z]{32}$/)
const arbPath = fc.tuple(arbHashPart, fc.stringMatching(/^[a-zA-Z0-9+_?=-][a-zA-Z0-9+._?=-]{0,30}$/))
  .map(([hashPart, name]) => ({ hashPart, name }) satisfies StorePath.StorePath)
const arbHash = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Hash.make("sha256", b))

const arbInfo = fc.record({
  path: arbPath,
  narHash: arbHash,
  narSize: fc.nat({ max: 2 ** 40 }),
  references: fc.uniqueArray(arbPath, { maxLength: 5, selector: StorePath.baseName }).map((r) => [...r].sort(StorePath.compare)),
  deriver: fc.option(arbPath, { nil: undefined }),
  signatures: fc.uniqueArray(fc.stringMatching(/^[a-z]{1,8}-1:[A-Za-z0-9+/]{86}==$/), { maxLength: 3 }).map((s) => [...s].sort()),
  ca: fc.option(fc.oneof(arbHash.map(ContentAddress.text), fc.tuple(fc.constantFrom("flat" as const, "recursive" as const), arbHash).map(([m, h]) => ContentAddress.fixed(m, h))), { nil: undefined }),
  registrationTime: fc.integer({ min: 1, max: 2 ** 40 }),
  ultimate: fc.boolean()
})

describe("wire decoders are total", () => {
  for (const [name, make] of Object.entries(decoders)) {
    it(`${name}: random bytes give a value or a typed error, never a throw`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = Wire.decodeBytes(make(), bytes)
        if (Result.isFailure(r)) expect(["WireTruncated", "WireTooLarge", "WireMalformed"]).toContain(r.failure._tag)
      }), { numRuns: 400 })
    })
    it(`${name}: plausible prefixes with huge lengths fail with WireTooLarge or WireTruncated, without allocating`, () => {
      fc.assert(fc.property(fc.array(fc.oneof(fc.nat({ max: 5 }), fc.constant(2 ** 50), fc.constant(2 ** 62)), { maxLength: 12 }), (numbers) => {
        const bytes = encode((w) => { for (const n of numbers) w.u64(BigInt(n)) })
        const r = Wire.decodeBytes(make(), bytes)
        if (Result.isFailure(r)) expect(["WireTruncated", "WireTooLarge", "WireMalformed"]).toContain(r.failure._tag)
      }), { numRuns: 300 })
    })
  }

  it("a string announced at 2^62 bytes is refused before anything is read", () => {
    const r = Wire.decodeBytes(Wire.string("a name", 1024), encode((w) => w.u64(2n ** 62n)))
    expect(Result.isFailure(r) && r.failure._tag).toBe("WireTooLarge")
    const list = Wire.decodeBytes(Worker.storePathStrings(), encode((w) => w.u64(2n ** 40n)))
    expect(Result.isFailure(list) && list.failure._tag).toBe("WireTooLarge")
  })

  it("non-zero padding is malformed", () => {
    const bytes = encode((w) => w.string("abc"))
    bytes[bytes.length - 1] = 1
    const r = Wire.decodeBytes(Wire.string("x"), bytes)
    expect(Result.isFailure(r) && r.failure._tag).toBe("WireMalformed")
  })
})

describe("what decoded strings are parsed into is total too", () => {
  // strings near the real shapes (store paths, derived paths, JSON) as well as arbitrary ones
  const arbText = fc.oneof(
    fc.string({ maxLength: 120 }),
    fc.tuple(fc.constantFrom("/nix/store/", "/nix/store", "/tmp/", ""), fc.string({ maxLength: 60 }), fc.constantFrom("", "!", "!*", "!out,dev", ".drv!out"))
      .map(([a, b, c]) => a + b + c),
    arbPath.map((p) => StorePath.print(p, storeDir) + "!out"),
    fc.json({ maxDepth: 2 }))
  const typed = (r: Result.Result<unknown, { readonly _tag: string }>) => {
    if (Result.isFailure(r)) expect(typeof r.failure._tag).toBe("string")
  }

  it("derived paths, store paths and realisation JSON give a value or a typed error", () => {
    fc.assert(fc.property(arbText, (text) => {
      typed(Worker.parseDerivedPath(text, storeDir))
      typed(Worker.parsePath(text, storeDir))
      const out = Worker.realisationOutPath(text, storeDir)
      if (out !== undefined) expect(typeof out.hashPart).toBe("string")
    }), { numRuns: 1000 })
  })

  it("path infos and derivations decoded from any bytes validate to a value or a typed error", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), arbPath, (bytes, path) => {
      const info = Wire.decodeBytes(Worker.rawPathInfo(34), bytes)
      if (Result.isSuccess(info)) typed(Worker.validatePathInfo(path, info.success.value, storeDir))
      const drv = Wire.decodeBytes(Worker.rawDerivation(), bytes)
      if (Result.isSuccess(drv)) typed(Worker.validateDerivation(drv.success.value, path.name, storeDir))
    }), { numRuns: 500 })
  })

  it("path infos and derivations with any field texts validate to a value or a typed error", () => {
    const arbHashText = fc.oneof(arbText, arbHash.map((h) => Hash.print(h, "base32")), arbHash.map((h) => Hash.encode(h, "sri")),
      fc.constantFrom("sha256:", "md5:00", "sha256-", "fixed:r:sha256:", "text:sha256:", "fixed:md5:"))
    const arbCa = fc.oneof(arbHashText, arbHashText.map((h) => `fixed:r:${h}`), arbHashText.map((h) => `text:${h}`))
    fc.assert(fc.property(arbPath, arbText, arbHashText, fc.array(arbText, { maxLength: 3 }), fc.array(arbText, { maxLength: 2 }), arbCa, fc.nat(), (path, deriver, narHash, references, sigs, ca, narSize) => {
      typed(Worker.validatePathInfo(path, { deriver, narHash, references, registrationTime: 0, narSize, ultimate: false, sigs, ca }, storeDir))
    }), { numRuns: 1000 })
    fc.assert(fc.property(arbPath, fc.array(fc.tuple(arbText, arbText, fc.oneof(arbText, fc.constantFrom("r:sha256", "sha256", "md5", "text:sha256")), arbHashText), { maxLength: 3 }),
      fc.array(arbText, { maxLength: 3 }), arbText, fc.array(fc.tuple(arbText, arbText), { maxLength: 3 }), (path, outputs, inputSrcs, builder, env) => {
        typed(Worker.validateDerivation({ outputs, inputSrcs, platform: "x86_64-linux", builder, args: [], env }, path.name, storeDir))
      }), { numRuns: 1000 })
  })

  it("machines lines (builders) give machines or a typed error", () => {
    const arbField = fc.oneof(fc.constantFrom("-", "", "ssh://u@h", "x86_64-linux,i686-linux", "4", "kvm,big-parallel", "@/etc/nix/machines", "#", ";", "\n"), fc.string({ maxLength: 12 }))
    fc.assert(fc.property(fc.array(arbField, { maxLength: 10 }), (fields) => {
      typed(Machines.parseMachines(fields.join(" "), "x86_64-linux"))
    }), { numRuns: 1000 })
  })
})

describe("wire encodings round-trip", () => {
  it("path infos (protocol 1.16+): write then read gives the same info", () => {
    fc.assert(fc.property(arbInfo, (info) => {
      const bytes = encode((w) => Worker.writePathInfo(w, info, storeDir, 34, true))
      const decoded = Wire.decodeBytes((function*() {
        const path = yield* Worker.storePathString()
        return { path, raw: yield* Worker.rawPathInfo(34) }
      })(), bytes)
      expect(Result.isSuccess(decoded)).toBe(true)
      const { path, raw } = Result.getOrThrow(decoded).value
      expect(path).toBe(StorePath.print(info.path, storeDir))
      const back = Result.getOrThrow(Worker.validatePathInfo(info.path, raw, storeDir))
      expect(back).toEqual({ ...info, ultimate: info.ultimate || undefined })
    }), { numRuns: 200 })
  })

  it("derivations (BuildDerivation's BasicDerivation) round-trip", () => {
    const arbEnv = fc.dictionary(fc.stringMatching(/^[a-zA-Z_]{1,10}$/), fc.string({ maxLength: 40 }), { maxKeys: 6 })
    fc.assert(fc.property(arbPath, arbHash, fc.boolean(), fc.array(arbPath, { maxLength: 4 }), fc.array(fc.string({ maxLength: 20 }), { maxLength: 4 }), arbEnv,
      (out, hash, fixed, srcs, args, envRecord) => {
        const drv: Derivation.Derivation = {
          name: "x",
          outputs: new Map([["out", fixed ? Derivation.fixed(StorePath.print(out), "recursive", hash) : Derivation.inputAddressed(StorePath.print(out))]]),
          inputDrvs: new Map(), inputSrcs: [...new Set(srcs.map((p) => StorePath.print(p)))].sort(),
          system: "x86_64-linux", builder: "/bin/sh", args, env: new Map(Object.entries(envRecord))
        }
        const bytes = encode((w) => Worker.writeDerivation(w, drv, drv.inputSrcs, storeDir))
        const raw = Result.getOrThrow(Wire.decodeBytes(Worker.rawDerivation(), bytes))
        expect(raw.used).toBe(bytes.length)
        const back = Result.getOrThrow(Worker.validateDerivation(raw.value, "x", storeDir))
        expect(back).toEqual(drv)
      }), { numRuns: 200 })
  })

  it("stderr messages round-trip (activities, results, errors)", () => {
    const check = (write: (w: WireWriter) => void, expected: unknown, minor = 34) => {
      const r = Result.getOrThrow(Wire.decodeBytes(Worker.stderrMessage(minor), encode(write)))
      expect(r.value).toEqual(expected)
    }
    fc.assert(fc.property(fc.nat(), fc.string(), fc.array(fc.oneof(fc.nat(), fc.string()), { maxLength: 4 }), (id, text, fields) => {
      check((w) => Worker.stderrStartActivity(w, id, 3, 105, text, fields, 0), { _tag: "StartActivity", id, level: 3, type: 105, text, fields, parent: 0 })
      check((w) => Worker.stderrResult(w, id, 101, fields), { _tag: "Result", id, type: 101, fields })
      check((w) => Worker.stderrStopActivity(w, id), { _tag: "StopActivity", id })
      check((w) => Worker.stderrNext(w, text), { _tag: "Next", text })
      check((w) => Worker.stderrError(w, text, 34), { _tag: "Error", message: text, status: 1 })
      check((w) => Worker.stderrError(w, text, 20, 7), { _tag: "Error", message: text, status: 7 }, 20)
    }), { numRuns: 100 })
  })
})

describe("NAR boundaries", () => {
  const arbNar = arbDump.map((d) => Result.getOrThrow(Tree.toNar(d)))
  it("the scanner stops exactly at the end of any NAR, whatever follows and however it is cut", () => {
    fc.assert(fc.property(arbNar, fc.uint8Array({ maxLength: 40 }), fc.array(fc.nat(), { maxLength: 8 }), (nar, trailer, cuts) => {
      const all = new Uint8Array([...nar, ...trailer])
      const scanner = new NarBoundary()
      let consumed = 0
      let ended = false
      for (const chunk of chunked(all, cuts)) {
        const r = scanner.push(chunk)
        expect(typeof r).toBe("number")
        if (typeof r === "number" && r >= 0) { consumed += r; ended = true; break }
        consumed += chunk.length
      }
      expect(ended).toBe(true)
      expect(consumed).toBe(nar.length)
    }), { numRuns: 300 })
  })

  it("mutated archives never make it throw", () => {
    fc.assert(fc.property(arbNar, fc.nat(), fc.nat({ max: 255 }), (nar, at, value) => {
      const bytes = new Uint8Array(nar)
      if (bytes.length > 0) bytes[at % bytes.length] = value
      const r = new NarBoundary().push(bytes)
      expect(typeof r === "number" || r._tag === "WireMalformed").toBe(true)
    }), { numRuns: 300 })
  })
})

const memorySource = (chunks: ReadonlyArray<Uint8Array>): ChunkSource => {
  let i = 0
  return { next: () => Promise.resolve(i < chunks.length ? chunks[i++]! : null) }
}

/**
 * `payload` framed (cut at `frameCuts`) and followed by the end frame and a u64 42, arriving cut at
 * `cuts`: a piece counts as already buffered (nextNow gives it) where `ready` says so, else it comes
 * later (next). The reader of the whole and the framed reader over it.
 */
const framedOver = (payload: Uint8Array, frameCuts: ReadonlyArray<number>, cuts: ReadonlyArray<number>, ready: ReadonlyArray<boolean>) => {
  const frames = chunked(payload, frameCuts).filter((f) => f.length > 0) // (an empty frame would end the stream)
  const wire = encode((w) => { for (const f of frames) w.raw(frameHeader(f.length)).raw(f); w.raw(endFrame).u64(42) })
  const chunks = chunked(wire, cuts)
  let i = 0
  const source: ChunkSource = {
    nextNow: () => i < chunks.length && ready[i % Math.max(1, ready.length)] ? chunks[i++]! : undefined,
    next: () => Promise.resolve(i < chunks.length ? chunks[i++]! : null)
  }
  const reader = new WireReader(source)
  return { reader, framed: reader.framed() }
}

describe("framed streams", () => {
  it("read back what was framed, for any framing and any cuts, and leave the rest of the input in place", async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 50 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), async (frames, cuts) => {
      const wire = encode((w) => { for (const f of frames) w.raw(frameHeader(f.length)).raw(f); w.raw(endFrame).u64(42) })
      const reader = new WireReader(memorySource(chunked(wire, cuts)))
      const framed = reader.framed()
      const got = await Effect.runPromise(Stream.runCollect(framed.exact(frames.reduce((n, f) => n + f.length, 0), "frames")))
      expect(Buffer.concat([...got])).toEqual(Buffer.concat(frames))
      await Effect.runPromise(framed.drain())
      expect(await Effect.runPromise(reader.run(Wire.u64()))).toBe(42)
    }), { numRuns: 100 })
  })

  it("exact: n bytes in steps that take what is buffered with them, whatever the frames, cuts and pieces already held; the rest stays; too few is WireTruncated", async () => {
    await fc.assert(fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.array(fc.nat({ max: 3000 }), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), fc.array(fc.boolean(), { maxLength: 30 }), fc.nat(),
      async (payload, frameCuts, cuts, ready, cut) => {
        const { reader, framed } = framedOver(payload, frameCuts, cuts, ready)
        const n = cut % (payload.length + 1)
        const got = await Effect.runPromise(Stream.runCollect(framed.exact(n, "the bytes")))
        expect(Buffer.concat([...got])).toEqual(Buffer.from(payload.subarray(0, n)))
        const rest = await Effect.runPromise(Stream.runCollect(framed.exact(payload.length - n, "the rest")))
        expect(Buffer.concat([...rest])).toEqual(Buffer.from(payload.subarray(n)))
        const tooMany = await Effect.runPromise(Effect.result(Stream.runCollect(framed.exact(1, "one more byte"))))
        expect(tooMany._tag === "Failure" && tooMany.failure._tag).toBe("WireTruncated")
        expect(await Effect.runPromise(reader.run(Wire.u64()))).toBe(42)
      }), { numRuns: 200 })
  })

  it("path infos read at once where their bytes are buffered (runNow) are those decodeBytes reads, whatever the frames, the cuts and which pieces had come", async () => {
    const pathInfo = function*() { return { path: yield* Worker.storePathString(), raw: yield* Worker.rawPathInfo(34) } }
    await fc.assert(fc.asyncProperty(
      fc.array(arbInfo, { minLength: 1, maxLength: 5 }), fc.array(fc.nat({ max: 600 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), fc.array(fc.boolean(), { maxLength: 40 }),
      async (infos, frameCuts, cuts, ready) => {
        const payload = encode((w) => { for (const info of infos) Worker.writePathInfo(w, info, storeDir, 34, true) })
        const { reader, framed } = framedOver(payload, frameCuts, cuts, ready)
        let offset = 0
        for (let k = 0; k < infos.length; k++) {
          const got = await framed.runNow(pathInfo())
          const want = Result.getOrThrow(Wire.decodeBytes(pathInfo(), payload.subarray(offset)))
          expect(got).toEqual(want.value)
          offset += want.used
        }
        await Effect.runPromise(framed.drain())
        expect(await Effect.runPromise(reader.run(Wire.u64()))).toBe(42)
      }), { numRuns: 200 })
  })

  it("a decoder cut short by the end of the input fails with WireTruncated, whether its bytes were buffered or awaited", async () => {
    const bytes = encode((w) => Worker.writePathInfo(w, { path: { hashPart: "0".repeat(32), name: "x" }, narHash: Hash.make("sha256", new Uint8Array(32)), narSize: 1, references: [], signatures: [] }, storeDir, 34, false))
    for (const now of [false, true]) {
      let given = false
      const piece = bytes.subarray(0, bytes.length - 3)
      const reader = new WireReader({ nextNow: () => now && !given ? (given = true, piece) : undefined, next: () => Promise.resolve(given ? null : (given = true, piece)) })
      const failure = await Promise.resolve().then(() => reader.runNow(Worker.rawPathInfo(34))).then(() => undefined, (e: { _tag?: string }) => e._tag)
      expect(failure).toBe("WireTruncated")
    }
  })

  it("a frame announced at 2^50 bytes allocates nothing: it ends as a truncated frame", async () => {
    const wire = encode((w) => w.u64(2n ** 50n).raw(new Uint8Array(16)))
    const reader = new WireReader(memorySource([wire]))
    const r = await Effect.runPromise(Effect.result(reader.framed().drain()))
    expect(r._tag === "Failure" && r.failure._tag).toBe("WireTruncated")
  })
})
