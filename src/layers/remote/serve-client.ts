/**
 * A client of Nix's serve protocol (2.7) over ssh, as Nix 2.8's LegacySSHStore: runs
 * `ssh HOST '<remote-program> --serve --write [--store URI]'` and speaks the protocol on the
 * command's stdin and stdout; its stderr (the remote build log) goes to a callback. The ssh
 * process is a resource of the scope it was opened in. The remote side may be Nix's `nix-store`
 * or `b3 nix-store`.
 */
import { Effect, Schema, Stream, type Scope } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type * as Derivation from "../../core/derivation/index.ts"
import * as StorePath from "../../core/store-path.ts"
import { Serve, Wire, Worker } from "../../core/wire/index.ts"
import { WireWriter } from "../../core/wire/encoder.ts"
import { readableChunkSource, WireReader, WireSink, type WireIoError } from "../../io/wire-io.ts"
import type { PathInfo } from "../../core/path-info.ts"

/** The remote machine could not be reached, or broke the protocol. */
export class RemoteError extends Schema.TaggedError<RemoteError>()("RemoteError", { host: Schema.String, reason: Schema.String }) {
  override get message() { return `remote machine '${this.host}': ${this.reason}` }
}

export interface SshTarget {
  /** `[user@]host[:port]`. */
  readonly host: string
  readonly sshKey?: string | undefined
  /** base64 of the host's public key line (`ssh-ed25519 AAAA…`). */
  readonly publicHostKey?: string | undefined
  /** Default `nix-store`; `b3 nix-store` for a machine with b3 instead of Nix. */
  readonly remoteProgram?: string | undefined
  /** `--store` for the remote program. */
  readonly remoteStore?: string | undefined
  /** Extra ssh options (default: $NIX_SSHOPTS). */
  readonly sshOpts?: ReadonlyArray<string> | undefined
}

/** An ssh:// URI as a target: `ssh://[user@]host[:port]?ssh-key=…&remote-program=…&remote-store=…&base64-ssh-public-host-key=…`. */
export const targetOfUri = (location: string, params: URLSearchParams, sshKey = ""): SshTarget => ({
  host: decodeURIComponent(location),
  sshKey: params.get("ssh-key") ?? (sshKey || undefined),
  publicHostKey: params.get("base64-ssh-public-host-key") ?? undefined,
  remoteProgram: params.get("remote-program") ?? undefined,
  remoteStore: params.get("remote-store") ?? undefined
})

const shellEscape = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** ssh's arguments for running `command` on the target. */
export const sshArgs = (target: SshTarget, command: string, knownHostsFile?: string): Array<string> => {
  const args = ["-x", "-a", "-T"]
  args.push(...(target.sshOpts ?? (process.env["NIX_SSHOPTS"] ?? "").split(/\s+/).filter((s) => s.length > 0)))
  if (target.sshKey) args.push("-i", target.sshKey)
  if (knownHostsFile) args.push(`-oUserKnownHostsFile=${knownHostsFile}`)
  let host = target.host
  const port = /^(.*):(\d+)$/.exec(host)
  if (port && !host.includes("]")) { host = port[1]!; args.push("-p", port[2]!) }
  args.push(host, command)
  return args
}

export class ServeConnection {
  readonly host: string
  readonly child: ChildProcess
  readonly reader: WireReader
  readonly sink: WireSink
  remoteVersion = 0
  /** Where the remote's stderr goes (set per operation; the build log during BuildDerivation). */
  onStderr: (chunk: Uint8Array) => void = () => {}
  stderrTail = ""

  constructor(host: string, child: ChildProcess) {
    this.host = host
    this.child = child
    this.reader = new WireReader(readableChunkSource(child.stdout!))
    this.sink = new WireSink(child.stdin!)
    child.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000)
      this.onStderr(chunk)
    })
  }

  get minor(): number { return this.remoteVersion & 0xff }

  send(f: (w: WireWriter) => void): void {
    const w = new WireWriter()
    f(w)
    this.sink.push(w.take())
  }

  private lift<A>(effect: Effect.Effect<A, WireIoError>, what: string): Effect.Effect<A, RemoteError> {
    return Effect.mapError(effect, (e) => new RemoteError({
      host: this.host,
      reason: `${what}: ${e.message}${this.stderrTail.trim() ? ` (${this.stderrTail.trim().split("\n").slice(-3).join("; ")})` : ""}`
    }))
  }

  read<A>(d: Parameters<WireReader["run"]>[0] & Wire.Decoder<A>, what: string): Effect.Effect<A, RemoteError> {
    return this.lift(this.reader.run(d) as Effect.Effect<A, WireIoError>, what)
  }

  flush(what: string): Effect.Effect<void, RemoteError> { return this.lift(this.sink.flush(), what) }

  queryValidPaths(paths: ReadonlyArray<StorePath.StorePath>, storeDir: string): Effect.Effect<ReadonlyArray<StorePath.StorePath>, RemoteError> {
    const self = this
    return Effect.gen(function*() {
      self.send((w) => { w.u64(Serve.Command.QueryValidPaths).bool(false).bool(false); Worker.writePaths(w, paths, storeDir) })
      yield* self.flush("query valid paths")
      const valid = new Set(yield* self.read(Worker.storePathStrings(), "query valid paths"))
      return paths.filter((p) => valid.has(StorePath.print(p, storeDir)))
    })
  }

  queryPathInfos(paths: ReadonlyArray<StorePath.StorePath>, storeDir: string): Effect.Effect<ReadonlyArray<Serve.RawServePathInfo>, RemoteError> {
    const self = this
    return Effect.gen(function*() {
      self.send((w) => { w.u64(Serve.Command.QueryPathInfos); Worker.writePaths(w, paths, storeDir) })
      yield* self.flush("query path infos")
      const out: Array<Serve.RawServePathInfo> = []
      while (true) {
        const info = yield* self.read(Serve.servePathInfo(self.minor), "query path infos")
        if (info === undefined) return out
        out.push(info)
      }
    })
  }

  /** Adds a path (cmdAddToStoreNar, 2.5+): the info, then the NAR bare; the remote answers 1. */
  addToStoreNar<E, R>(info: PathInfo, nar: Stream.Stream<Uint8Array, E, R>, storeDir: string): Effect.Effect<void, RemoteError | E, R> {
    const self = this
    return Effect.gen(function*() {
      if (self.minor < 5) return yield* new RemoteError({ host: self.host, reason: `serve protocol 2.${self.minor} is too old to add paths (2.5 needed)` })
      self.send((w) => {
        w.u64(Serve.Command.AddToStoreNar)
        Worker.writePathInfo(w, info, storeDir, 16, true)
      })
      yield* Stream.runForEach(nar, (chunk) => self.lift(self.sink.write(chunk), "send a NAR"))
      yield* self.flush("send a NAR")
      const ok = yield* self.read(Wire.u64Clamped(), "add a path")
      if (ok !== 1) return yield* new RemoteError({ host: self.host, reason: `failed to add path '${StorePath.print(info.path, storeDir)}'` })
    })
  }

  /** The NAR of a path (cmdDumpStorePath), as it arrives; the connection is busy until it is read to the end. */
  dumpStorePath(path: StorePath.StorePath, storeDir: string): Stream.Stream<Uint8Array, RemoteError> {
    const self = this
    return Stream.unwrap(Effect.gen(function*() {
      self.send((w) => w.u64(Serve.Command.DumpStorePath).string(StorePath.print(path, storeDir)))
      yield* self.flush("dump a path")
      return Stream.mapError(self.reader.nar(), (e) => new RemoteError({ host: self.host, reason: `reading the NAR of '${StorePath.print(path, storeDir)}': ${e.message}` }))
    }))
  }

  /** Builds a derivation sent whole; the remote's log arrives on `onLog` meanwhile. */
  buildDerivation(
    drvPath: StorePath.StorePath, drv: Derivation.Derivation, inputSrcs: ReadonlyArray<string>, storeDir: string,
    settings: Serve.BuildSettings, onLog: (chunk: Uint8Array) => void
  ): Effect.Effect<{ readonly status: number; readonly errorMsg: string }, RemoteError> {
    const self = this
    return Effect.gen(function*() {
      self.send((w) => {
        w.u64(Serve.Command.BuildDerivation).string(StorePath.print(drvPath, storeDir))
        Worker.writeDerivation(w, drv, inputSrcs, storeDir)
        Serve.writeBuildSettings(w, settings, self.minor)
      })
      self.onStderr = onLog
      yield* self.flush("send a derivation")
      const status = yield* self.read(Wire.uint("a build status"), "build")
      const errorMsg = yield* self.read(Wire.string("an error message", Wire.limits.longString), "build")
      if (self.minor >= 3) {
        yield* self.read(Wire.u64("times built"), "build")
        yield* self.read(Wire.bool(), "build")
        yield* self.read(Wire.u64Clamped("start time"), "build")
        yield* self.read(Wire.u64Clamped("stop time"), "build")
      }
      if (self.minor >= 6) yield* self.read(Worker.buildOutputs(), "build")
      return { status, errorMsg }
    }).pipe(Effect.ensuring(Effect.sync(() => { self.onStderr = () => {} })))
  }
}

/** Opens a serve-protocol session on the target over ssh for the scope. */
export const openServe = (target: SshTarget): Effect.Effect<ServeConnection, RemoteError, Scope.Scope> => Effect.gen(function*() {
  const command = `${target.remoteProgram ?? "nix-store"} --serve --write${target.remoteStore ? ` --store ${shellEscape(target.remoteStore)}` : ""}`
  let knownHosts: string | undefined
  if (target.publicHostKey) {
    const dir = mkdtempSync(join(tmpdir(), "b3-ssh-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    knownHosts = join(dir, "known_hosts")
    const bare = target.host.replace(/^.*@/, "").replace(/:(\d+)$/, "")
    const port = /:(\d+)$/.exec(target.host)?.[1]
    writeFileSync(knownHosts, `${port ? `[${bare}]:${port}` : bare} ${Buffer.from(target.publicHostKey, "base64").toString().trim()}\n`)
  }
  const child = yield* Effect.acquireRelease(
    Effect.sync(() => spawn("ssh", sshArgs(target, command, knownHosts), { stdio: ["pipe", "pipe", "pipe"] })),
    (child) => Effect.callback<void>((resume) => {
      if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
      child.once("exit", () => resume(Effect.void))
      child.stdin?.end()
      child.kill("SIGTERM")
    }))
  child.on("error", () => { /* seen as a closed connection */ })
  const conn = new ServeConnection(target.host, child)
  conn.send((w) => w.u64(Serve.SERVE_MAGIC_1).u64(Serve.SERVE_PROTOCOL_VERSION))
  yield* conn.flush("connect")
  const magic = yield* conn.read(Wire.u64Clamped("the serve magic"), "connect")
  if (magic !== Serve.SERVE_MAGIC_2) return yield* new RemoteError({ host: target.host, reason: "'nix-store --serve' protocol mismatch" })
  conn.remoteVersion = yield* conn.read(Wire.uint("the serve protocol version"), "connect")
  if ((conn.remoteVersion & 0xff00) !== 0x200) return yield* new RemoteError({ host: target.host, reason: "unsupported 'nix-store --serve' protocol version" })
  return conn
})
