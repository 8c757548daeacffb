import { describe, expect, it } from "@effect/vitest"
import { zstdDecompressSync, createZstdCompress } from "node:zlib"
import { randomBytes } from "node:crypto"
import { SpentBuffers } from "../../src/io/spent-buffers.ts"

/** Views of `buffer` as a zlib stream hands them out: consecutive pieces of one output buffer. */
const views = (buffer: ArrayBuffer, ...lengths: Array<number>) => {
  let offset = 0
  return lengths.map((n) => { const view = new Uint8Array(buffer, offset, n); offset += n; return view })
}

describe("SpentBuffers: a compressor's output buffers freed once spent", () => {
  it("frees a buffer only once the stream has moved past it and all its views are written", () => {
    const spent = new SpentBuffers()
    const first = new ArrayBuffer(256 << 10)
    const second = new ArrayBuffer(256 << 10)
    const [a, b] = views(first, 100, 200)
    const written = [spent.track(a!), spent.track(b!)]
    written[0]!()
    expect(first.byteLength).toBe(256 << 10) // the stream may still write into it
    const [c] = views(second, 50)
    const writtenC = spent.track(c!)
    expect(first.byteLength).toBe(256 << 10) // moved on, but b is not written yet
    written[1]!()
    expect(first.detached).toBe(true)
    expect(second.detached).toBe(false)
    spent.end()
    expect(second.detached).toBe(false) // c is not written yet
    writtenC()
    expect(second.detached).toBe(true)
  })

  it("leaves small buffers alone (they may be slices of Node's shared Buffer pool)", () => {
    const spent = new SpentBuffers()
    const pool = Buffer.from("x".repeat(100)) // from the pool
    const small = new ArrayBuffer(1024)
    spent.track(pool)()
    spent.track(new Uint8Array(small))()
    spent.end()
    expect(pool.buffer.detached).toBe(false)
    expect(small.detached).toBe(false)
  })

  it("with node:zlib's zstd stream, every chunk written reaches the other end intact", async () => {
    const input = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(2 << 20, 7), randomBytes(1 << 20)])
    const z = createZstdCompress({ chunkSize: 256 << 10 })
    const spent = new SpentBuffers()
    const received: Array<Buffer> = []
    const pending: Array<() => void> = []
    // a slow writer: copies each chunk (as a socket does) a little later, then says it is written
    z.on("data", (chunk: Buffer) => {
      const written = spent.track(chunk)
      pending.push(() => { received.push(Buffer.from(chunk)); written() })
      if (pending.length > 3) pending.shift()!()
    })
    await new Promise<void>((resolve) => {
      z.once("end", () => { spent.end(); for (const write of pending.splice(0)) write(); resolve() })
      z.end(input)
    })
    expect(zstdDecompressSync(Buffer.concat(received)).equals(input)).toBe(true)
  })
})
