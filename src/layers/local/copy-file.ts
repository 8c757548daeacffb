/**
 * Copies one regular file into the store durably while the caller digests its bytes, reading the
 * source exactly once (what is hashed is what is written). Reads, writes and the flushing to disk
 * all overlap: the next chunk is read and earlier chunks are written on libuv's thread pool while
 * this thread hashes the current one, and written data is flushed (`fdatasync`) every few chunks
 * in the background, so the final fsync has almost nothing left to do.
 */
import { close, fdatasync, fstat, fsync, open, read, write } from "node:fs"

const chunkSize = 4 << 20
/** Buffers in the ring: one being read, one being digested, the rest being written. */
const ringSize = 8
const maxWritesInFlight = ringSize - 2
/** Written bytes between background flushes. */
const flushEvery = 64 << 20

export class SourceChanged extends Error {}

const call = <A>(f: (done: (error: NodeJS.ErrnoException | null, value?: A) => void) => void): Promise<A> =>
  new Promise((resolve, reject) => f((error, value) => (error ? reject(error) : resolve(value as A))))

/**
 * Copies `size` bytes of `source` to a new file `target` (created with O_EXCL, mode 0644 or 0755),
 * calling `digest` on every chunk in order, and fsyncs it. Fails with SourceChanged if the source
 * is shorter than `size` (it changed since it was measured); stops early when `signal` aborts.
 */
export const copyFileDurably = async (
  source: string,
  target: string,
  size: number,
  executable: boolean,
  digest: (chunk: Uint8Array) => void,
  signal?: AbortSignal
): Promise<void> => {
  const input = await call<number>((done) => open(source, "r", done))
  let output = -1
  try {
    output = await call<number>((done) => open(target, "wx", executable ? 0o755 : 0o644, done))
    const ring = Array.from({ length: ringSize }, () => Buffer.allocUnsafe(Math.min(chunkSize, Math.max(size, 1))))
    const readChunk = (slot: number, position: number) => {
      const buffer = ring[slot % ringSize]!.subarray(0, Math.min(chunkSize, size - position))
      return call<number>((done) => read(input, buffer, 0, buffer.length, position, done)).then((n) => {
        if (n < buffer.length) throw new SourceChanged(`${source} became shorter while it was being read`)
        return buffer
      })
    }
    const writes: Array<Promise<void>> = []
    let flushing: Promise<void> = Promise.resolve()
    let unflushed = 0
    let position = 0
    let slot = 0
    let next = size > 0 ? readChunk(slot++, 0) : undefined
    while (next) {
      const buffer = await next
      if (signal?.aborted) throw signal.reason
      const at = position
      position += buffer.length
      next = position < size ? readChunk(slot++, position) : undefined
      digest(buffer)
      writes.push(writeAll(output, buffer, at))
      if (writes.length > maxWritesInFlight) await writes.shift()
      unflushed += buffer.length
      if (unflushed >= flushEvery) {
        unflushed = 0
        await flushing
        flushing = call<void>((done) => fdatasync(output, done))
      }
    }
    await Promise.all(writes)
    await flushing
    const grown = (await call<{ size: number }>((done) => fstat(input, done))).size
    if (grown !== size) throw new SourceChanged(`${source} changed size while it was being read`)
    await call<void>((done) => fsync(output, done))
  } finally {
    if (output >= 0) await call<void>((done) => close(output, done)).catch(() => undefined)
    await call<void>((done) => close(input, done)).catch(() => undefined)
  }
}

const writeAll = async (fd: number, buffer: Uint8Array, position: number): Promise<void> => {
  let offset = 0
  while (offset < buffer.length) {
    offset += await call<number>((done) => write(fd, buffer, offset, buffer.length - offset, position + offset, done))
  }
}
