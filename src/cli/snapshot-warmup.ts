/**
 * Run once while the CLI's startup snapshot is built (snapshot-entry.ts), never in a run: a
 * worker-protocol session as `nix copy --to unix://…` makes it (handshake, SetOptions,
 * QueryValidPaths, AddMultipleToStore of small paths, QueryPathInfo), served by the daemon's own
 * connection code (src/servers/daemon/connection.ts) over an in-memory store, through streams in
 * this process. V8 keeps the bytecode of every function that has run in the snapshot, so a fresh
 * `b3 daemon` starts with the code its first client runs already compiled, instead of parsing and
 * compiling ~1,000 functions lazily while that client waits (every command's RSS pays only for the
 * bytecode of what runs here). The local store's own steps for a small NAR (checked in one pass,
 * then written with `restoreEventsNow`) run as well, into a temporary directory removed at once:
 * the store itself is not opened (its SQLite bindings cannot be in a snapshot).
 *
 * What this leaves in the heap: modules it evaluates (the daemon's, only loaded on first use in a
 * run otherwise) and the bytecode; nothing else. Every object it makes (store, streams, fibers) is
 * garbage once it ends, no handle or timer stays open, and nothing here reads what a run depends on
 * (see snapshot-entry.ts). Modules it evaluates must not read per-process state when evaluated
 * (the pid, the time, the environment): src/servers/daemon/tunnel.ts reads the pid on first use.
 */
import { Effect, Result } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PassThrough } from "node:stream"
import * as ContentAddress from "../core/content-address.ts"
import * as Hash from "../core/hash.ts"
import type { PathInfo } from "../core/path-info.ts"
import * as StorePath from "../core/store-path.ts"
import { encode, endFrame, frameHeader } from "../core/wire/encoder.ts"
import { Worker } from "../core/wire/index.ts"
import { readableChunkSource, WireReader, WireSink } from "../io/wire-io.ts"
import * as MemoryStore from "../layers/memory.ts"
import { checkNarBytes, narInHand } from "../nar/check.ts"
import { restoreEventsNow } from "../nar/fs/index.ts"
import * as Tree from "../nar/tree.ts"
import type { DaemonBackend } from "../servers/daemon/backend.ts"
import { serveConnection } from "../servers/daemon/connection.ts"
import { expectationOf } from "../services/verified-nar.ts"
import type { StoreWriteApi } from "../services/store-write.ts"

/** Paths sent: more than one of the daemon's batches (256), so that a batch is written while the next is read. */
const pathCount = 300

/** Paths as `nix-store --add` makes them: one small file each, content-addressed (`fixed:r:sha256`). */
const samplePaths = (storeDir: string): Array<{ readonly info: PathInfo; readonly nar: Uint8Array }> => {
  const out: Array<{ info: PathInfo; nar: Uint8Array }> = []
  for (let i = 0; i < pathCount; i++) {
    const nar = Result.getOrThrow(Tree.toNar(Tree.regular(`warm-up path ${i}\n`.repeat(1 + (i % 50))))) // (a single file: never BadNar)
    const narHash = Hash.hashBytes("sha256", nar)
    const path = StorePath.makeFixedOutput("recursive", narHash, `s${i}`, { storeDir })
    out.push({ info: { path, narHash, narSize: nar.length, references: [], signatures: [], ca: ContentAddress.fixed("recursive", narHash) }, nar })
  }
  return out
}

/** What `nix copy --to unix://…` (Nix 2.8) sends: the handshake, then its ops, then it hangs up. */
const clientBytes = (paths: ReadonlyArray<{ readonly info: PathInfo; readonly nar: Uint8Array }>, storeDir: string): Array<Uint8Array> => {
  const printed = paths.map(({ info }) => StorePath.print(info.path, storeDir))
  const out: Array<Uint8Array> = [
    encode((w) => w.u64(Worker.WORKER_MAGIC_1).u64(Worker.PROTOCOL_VERSION).bool(false).u64(0)),
    encode((w) => Worker.writeClientSettings(w.u64(Worker.Op.SetOptions), {
      keepFailed: false, keepGoing: false, tryFallback: false, verbosity: 3, maxBuildJobs: 1, maxSilentTime: 0,
      verboseBuild: true, buildCores: 0, useSubstitutes: false, overrides: [["experimental-features", "nix-command"]]
    })),
    encode((w) => w.u64(Worker.Op.QueryValidPaths).strings(printed).bool(false)),
    encode((w) => w.u64(Worker.Op.AddMultipleToStore).bool(false).bool(true))
  ]
  // the paths, as the client frames them: count, then each path's info and NAR
  const body: Array<Uint8Array> = [encode((w) => w.u64(paths.length))]
  for (const { info, nar } of paths) body.push(encode((w) => Worker.writePathInfo(w, info, storeDir, 34, true)), nar)
  const whole = Buffer.concat(body)
  for (let at = 0; at < whole.length; at += 32 * 1024) {
    const piece = whole.subarray(at, Math.min(at + 32 * 1024, whole.length))
    out.push(frameHeader(piece.length), piece)
  }
  out.push(endFrame)
  out.push(encode((w) => w.u64(Worker.Op.QueryValidPaths).strings(printed).bool(false)))
  out.push(encode((w) => w.u64(Worker.Op.QueryPathInfo).string(printed[0]!)))
  return out
}

/**
 * The memory store's writes, each small NAR first checked and restored as the local store's
 * `addInMemory` does (into `scratch`, removed afterwards).
 */
const localLikeWrite = (write: StoreWriteApi, storeDir: string, scratch: string): StoreWriteApi => {
  let n = 0
  return {
    ...write,
    addMultiple: (items, options) => Effect.suspend(() => {
      for (const { info, nar } of items) {
        const inHand = narInHand(nar)
        if (inHand === undefined) continue
        const { events, error } = checkNarBytes(inHand.bytes, { expect: [...inHand.expect, expectationOf(info, storeDir)] })
        if (error) return Effect.die(error)
        // (not `canonical`: that would have the restore keep this process's umask for the run)
        const failed = restoreEventsNow(events, join(scratch, `${n++}`), { direct: true, flushBigFiles: false })
        if (failed) return Effect.die(failed)
      }
      return write.addMultiple(items, options)
    })
  }
}

/**
 * Runs the session; resolves when the daemon's side has ended, with the number of paths the store
 * then holds (all those sent, unless the session went wrong: then less was compiled, nothing else).
 */
export const warmUpDaemon = async (): Promise<number> => {
  const storeDir = StorePath.defaultStoreDir
  const scratch = mkdtempSync(join(tmpdir(), "b3-snapshot-warmup-"))
  try {
    const store = MemoryStore.make({ storeDir })
    const backend: DaemonBackend = { read: store.read, write: localLikeWrite(store.write, storeDir, scratch) }
    const toDaemon = new PassThrough()
    const fromDaemon = new PassThrough()
    fromDaemon.resume() // the client does not read the answers
    const roots = new Set<string>()
    const tempRoots = { all: () => [...roots], forConnection: () => ({ add: (p: string) => { roots.add(p) }, release: () => roots.clear() }) }
    const session = serveConnection(new WireReader(readableChunkSource(toDaemon)), new WireSink(fromDaemon), backend,
      { trusted: true, requireSigs: false, trustedKeys: [], version: "warm-up" }, tempRoots, "warm-up")
    const done = Effect.runPromise(session)
    const paths = samplePaths(storeDir)
    for (const bytes of clientBytes(paths, storeDir)) toDaemon.write(bytes)
    toDaemon.end()
    await done
    fromDaemon.destroy()
    toDaemon.destroy()
    return (await Effect.runPromise(store.read.queryValidPaths(paths.map(({ info }) => info.path)))).length
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}
