/** Benchmark inputs, generated in a scratch directory: one big file, and many small files in nested dirs. */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs"
import { join } from "node:path"

/** A file of `mib` MiB of non-repeating bytes. */
export const bigFile = (path: string, mib: number): string => {
  const fd = openSync(path, "w")
  const block = Buffer.alloc(1 << 20)
  for (let i = 0; i < mib; i++) {
    for (let j = 0; j < block.length; j += 4) block.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, j)
    writeSync(fd, block)
  }
  closeSync(fd)
  return path
}

/** `count` small files (0–4 KiB) spread over nested directories, some executable, some symlinks. */
export const manySmallFiles = (root: string, count: number): string => {
  mkdirSync(root, { recursive: true })
  for (let i = 0; i < count; i++) {
    const dir = join(root, `d${i % 50}`, `e${Math.floor(i / 50) % 40}`)
    if (i < 2000) mkdirSync(dir, { recursive: true })
    const size = (i * 7919) % 4096
    writeFileSync(join(dir, `f${i}`), Buffer.alloc(size, i & 0xff), { mode: i % 10 === 0 ? 0o755 : 0o644 })
  }
  return root
}
