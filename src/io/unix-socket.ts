/**
 * Listening on a unix socket whatever the length of its path. A socket's path must fit in
 * sun_path (108 bytes on Linux); a longer one (stores deep in temporary directories) gets its
 * socket in a short private directory under /tmp, with a symlink at the asked path, which clients
 * connect through as if it were the socket.
 */
import { mkdtempSync, rmSync, symlinkSync } from "node:fs"
import type { Server } from "node:net"
import { join } from "node:path"

const maxSocketPath = 100

/** Listens on `path`; resolves with a cleanup that removes what was made (the server's close is the caller's). */
export const listenUnix = (server: Server, path: string): Promise<() => void> => new Promise((resolve, reject) => {
  const long = Buffer.byteLength(path) > maxSocketPath
  const dir = long ? mkdtempSync("/tmp/b3-sock-") : undefined
  const actual = dir ? join(dir, "socket") : path
  const onError = (e: Error) => {
    if (dir) rmSync(dir, { recursive: true, force: true })
    reject(e)
  }
  server.once("error", onError)
  server.listen(actual, () => {
    server.off("error", onError)
    try {
      if (dir) symlinkSync(actual, path)
    } catch (e) {
      server.close()
      onError(e as Error)
      return
    }
    resolve(() => {
      if (!dir) return
      rmSync(path, { force: true })
      rmSync(dir, { recursive: true, force: true })
    })
  })
})
