/** Blobs in a local directory (`file:///dir` caches): atomic writes by temp file + rename. */
import { Effect, Option } from "effect"
import { randomBytes } from "node:crypto"
import { existsSync, fsyncSync, mkdirSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { mkdir, open, rename, rm } from "node:fs/promises"
import { dirname, join, normalize } from "node:path"
import { readFileStream } from "../../io/file-stream.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import type { BlobStore } from "./blob-store.ts"

export const makeFileBlobs = (uri: string, dir: string): BlobStore => {
  const spoolDir = join(dir, ".b3-spool")
  const error = (operation: string) => (cause: unknown) =>
    new StoreIoError({ store: uri, operation, reason: cause instanceof Error ? cause.message : String(cause) })
  const pathOf = (key: string) => {
    const path = normalize(join(dir, key))
    return path.startsWith(dir + "/") ? path : join(dir, "invalid-key") // keys come from our own code; never escape the dir
  }
  const durable = (path: string) => { const fd = openSync(path, "r"); try { fsyncSync(fd) } finally { closeSync(fd) } }
  const place = (key: string, write: (tmp: string) => void) => Effect.try({
    try: () => {
      const target = pathOf(key)
      mkdirSync(dirname(target), { recursive: true })
      const tmp = join(dirname(target), `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`)
      write(tmp)
      durable(tmp)
      renameSync(tmp, target)
    },
    catch: error(`write ${key}`)
  })
  return {
    uri,
    spoolDir,
    exists: (key) => Effect.sync(() => existsSync(pathOf(key))),
    localPath: pathOf,
    getBytes: (key) => Effect.try({
      try: () => existsSync(pathOf(key)) ? Option.some(new Uint8Array(readFileSync(pathOf(key)))) : Option.none(),
      catch: error(`read ${key}`)
    }),
    getStream: (key) => readFileStream(pathOf(key), error(`read ${key}`)),
    getRange: (key, start, length) => Effect.tryPromise({
      try: async () => {
        const handle = await open(pathOf(key), "r")
        try {
          const out = Buffer.allocUnsafe(length) // every byte is read into it (no need to zero it first)
          let got = 0
          while (got < length) {
            const { bytesRead } = await handle.read(out, got, length - got, start + got)
            if (bytesRead === 0) throw new Error(`the blob ends before byte ${start + length}`)
            got += bytesRead
          }
          return out
        } finally {
          await handle.close()
        }
      },
      catch: error(`read ${key} [${start}, +${length})`)
    }),
    putParts: (key, parts) => Effect.tryPromise({
      try: async () => {
        const target = pathOf(key)
        await mkdir(dirname(target), { recursive: true })
        const tmp = join(dirname(target), `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`)
        try {
          const handle = await open(tmp, "w")
          try {
            // writev takes at most IOV_MAX (1024) buffers at a time
            for (let i = 0; i < parts.length; i += 1024) {
              const batch = parts.slice(i, i + 1024)
              const size = batch.reduce((n, p) => n + p.length, 0)
              const { bytesWritten } = await handle.writev(batch as Array<Uint8Array>)
              if (bytesWritten !== size) throw new Error(`short write (${bytesWritten} of ${size} bytes)`)
            }
            await handle.datasync()
          } finally {
            await handle.close()
          }
          await rename(tmp, target)
        } catch (e) {
          await rm(tmp, { force: true })
          throw e
        }
      },
      catch: error(`write ${key}`)
    }),
    remove: (key) => Effect.try({ try: () => rmSync(pathOf(key), { force: true }), catch: error(`delete ${key}`) }),
    putFile: (key, file) => place(key, (tmp) => renameSync(file, tmp)),
    putBytes: (key, bytes) => place(key, (tmp) => writeFileSync(tmp, bytes))
  }
}

