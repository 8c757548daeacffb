/**
 * Store URIs of a Nix daemon: `daemon` (the socket at $NIX_DAEMON_SOCKET_PATH, else
 * /nix/var/nix/daemon-socket/socket) and `unix:///path/to/socket`. Options: `store=` (the
 * daemon's store dir, default /nix/store), `max-connections=` (default 4), `max-jobs=`, `cores=`,
 * `keep-going=`. Other Nix options (`root=`, `log=`, …) are accepted and ignored: they describe the
 * client's view of the daemon's files, which b3 never reads directly.
 */
import { Context, Effect, Layer, Result } from "effect"
import { StoreBuild } from "../../services/store-build.ts"
import { StoreMaintenance } from "../../services/store-maintenance.ts"
import { StoreRead } from "../../services/store-read.ts"
import { StoreWrite } from "../../services/store-write.ts"
import { cpus } from "node:os"
import * as StorePath from "../../core/store-path.ts"
import { BadStoreUri } from "../../services/store-errors.ts"
import type { StoreOpener } from "../../services/registry.ts"
import { checkParams, type StoreUri } from "../../services/store-uri.ts"
import { make } from "./daemon-store.ts"

export const defaultSocket = "/nix/var/nix/daemon-socket/socket"

const socketOf = (uri: StoreUri): string | undefined => {
  if (uri.scheme === "daemon") return process.env["NIX_DAEMON_SOCKET_PATH"] || defaultSocket
  const path = decodeURIComponent(uri.location)
  return path.startsWith("/") ? path : undefined
}

const number = (uri: StoreUri, name: string, fallback: number): number | undefined => {
  const v = uri.params.get(name)
  if (v === null) return fallback
  return /^\d+$/.test(v) ? Number(v) : undefined
}

export const openDaemonStore: StoreOpener = (uri) => Layer.effectContext(Effect.gen(function*() {
  yield* Effect.fromResult(checkParams(uri, ["store", "max-connections", "max-jobs", "cores", "keep-going", "root", "state", "log", "real", "trusted"]))
  const socketPath = socketOf(uri)
  if (!socketPath) return yield* new BadStoreUri({ uri: uri.raw, reason: "a daemon store is 'daemon' or 'unix:///absolute/path/to/socket'" })
  const storeDir = uri.params.get("store") ?? StorePath.defaultStoreDir
  if (Result.isFailure(StorePath.validateStoreDir(storeDir))) return yield* new BadStoreUri({ uri: uri.raw, reason: `bad store dir '${storeDir}'` })
  const maxConnections = number(uri, "max-connections", 4)
  const maxJobs = number(uri, "max-jobs", 1)
  const cores = number(uri, "cores", cpus().length)
  if (maxConnections === undefined || maxJobs === undefined || cores === undefined) {
    return yield* new BadStoreUri({ uri: uri.raw, reason: "max-connections, max-jobs and cores take whole numbers" })
  }
  const store = yield* make({
    uri: uri.raw, socketPath, storeDir, maxConnections,
    client: { maxBuildJobs: maxJobs, buildCores: cores, keepGoing: uri.params.get("keep-going") === "true", maxSilentTime: 0, overrides: [] }
  })
  return Context.make(StoreRead, store.read).pipe(
    Context.add(StoreWrite, store.write), Context.add(StoreBuild, store.build), Context.add(StoreMaintenance, store.maintenance))
}))
