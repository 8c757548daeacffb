/** Positional gathered writes on libuv's threads, for writers that keep their buffers until written. */
import { writev } from "node:fs"

/** writev takes at most IOV_MAX (1024) buffers at a time. */
const IOV_MAX = 1024

/** What is left of `chunks` once their first `n` bytes are written. */
const afterBytes = (chunks: ReadonlyArray<Uint8Array>, n: number): ReadonlyArray<Uint8Array> => {
  let i = 0
  while (i < chunks.length && n >= chunks[i]!.length) n -= chunks[i++]!.length
  if (i === chunks.length) return []
  if (n === 0 && chunks[i]!.length > 0) return chunks.slice(i)
  return [chunks[i]!.subarray(n), ...chunks.slice(i + 1)]
}

/**
 * Writes `chunks` one after the other at `position` of the file `fd` (writev, at most IOV_MAX
 * buffers a call; a short write is continued; one that writes nothing fails with EIO).
 */
export const writevAt = async (fd: number, chunks: ReadonlyArray<Uint8Array>, position: number): Promise<void> => {
  let rest = chunks
  while (rest.length > 0) {
    const batch = rest.length > IOV_MAX ? rest.slice(0, IOV_MAX) : rest
    const n = await new Promise<number>((resolve, reject) => writev(fd, batch as Array<Uint8Array>, position, (e, written) => e ? reject(e) : resolve(written)))
    if (n === 0) throw Object.assign(new Error("short write (no bytes written)"), { code: "EIO" })
    position += n
    rest = afterBytes(rest, n)
  }
}
