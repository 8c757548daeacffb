/**
 * Streamed compression for binary-cache NARs, both ways: `none`, `xz`, `zstd`, `bzip2` (read and
 * write) as Nix names them. zstd is Node's own (node:zlib); xz and bzip2 run Debian's `xz` and
 * `bzip2` as child processes fed through pipes: streaming, multi-threaded where asked, with
 * back-pressure, and killed if the stream is interrupted.
 */
import { Schema, Stream } from "effect"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { spawn } from "node:child_process"
import { Duplex, Transform } from "node:stream"
import { constants, createZstdCompress, createZstdDecompress } from "node:zlib"

export const compressions = ["none", "xz", "zstd", "bzip2"] as const
export type Compression = (typeof compressions)[number]

export const isCompression = (s: string): s is Compression => (compressions as ReadonlyArray<string>).includes(s)

/** The file extension Nix gives a NAR compressed this way. */
export const extension: Record<Compression, string> = { none: ".nar", xz: ".nar.xz", zstd: ".nar.zst", bzip2: ".nar.bz2" }

export class CompressionError extends Schema.TaggedError<CompressionError>()("CompressionError", {
  compression: Schema.String,
  direction: Schema.String,
  reason: Schema.String
}) {
  override get message() { return `${this.compression} ${this.direction} failed: ${this.reason}` }
}

export interface CompressOptions {
  /** Use all cores (Nix's `parallel-compression`). */
  readonly parallel?: boolean
  /** Compression level, where the format has one. */
  readonly level?: number
}

/**
 * Output buffer of a zstd stream. Node's default (16 KiB) makes a round trip between the main
 * thread and libuv's thread pool for every 16 KiB of output: 256 KiB made zstd at level 1 about
 * 1.3–1.9× faster here, as fast as `zstd -1` itself.
 */
const zstdChunkSize = 256 << 10

/** A child process as a duplex whose readable side fails if the process exits non-zero. */
const processDuplex = (command: string, args: ReadonlyArray<string>): Duplex => {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] })
  let stderr = ""
  child.stderr.on("data", (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
  child.on("error", () => { /* reported through `exited` (code null) and the pipes */ })
  const checked = new Transform({
    transform(chunk, _enc, done) { done(null, chunk) },
    flush(done) {
      exited.then((code) => done(code === 0 ? null : new Error(stderr.trim() || `${command} exited with ${code}`)))
    }
  })
  child.stdout.pipe(checked)
  child.stdin.on("error", () => { /* the process may exit early on bad input; its exit code says why */ })
  const duplex = Duplex.from({ writable: child.stdin, readable: checked })
  duplex.on("close", () => { if (child.exitCode === null) child.kill("SIGKILL") })
  return duplex
}

const duplexFor = (compression: Exclude<Compression, "none">, direction: "compress" | "decompress", options: CompressOptions): Duplex => {
  switch (compression) {
    case "zstd":
      return direction === "compress"
        ? createZstdCompress({
          chunkSize: zstdChunkSize,
          params: {
            [constants.ZSTD_c_compressionLevel]: options.level ?? 3,
            ...(options.parallel ? { [constants.ZSTD_c_nbWorkers]: 0 } : {})
          }
        })
        : createZstdDecompress({ chunkSize: zstdChunkSize })
    case "xz":
      return direction === "compress"
        ? processDuplex("xz", ["-c", `-${options.level ?? 6}`, ...(options.parallel ? ["-T0"] : ["-T1"])])
        : processDuplex("xz", ["-dc", "-T1"])
    case "bzip2":
      return direction === "compress"
        ? processDuplex("bzip2", ["-c", `-${options.level ?? 9}`])
        : processDuplex("bzip2", ["-dc"])
  }
}

const through = <E, R>(stream: Stream.Stream<Uint8Array, E, R>, compression: Compression, direction: "compress" | "decompress", options: CompressOptions = {}) =>
  compression === "none"
    ? Stream.mapError(stream, (e): E | CompressionError => e)
    : NodeStream.pipeThroughDuplex(stream, {
      evaluate: () => duplexFor(compression, direction, options),
      onError: (error) => new CompressionError({ compression, direction, reason: error instanceof Error ? error.message : String(error) })
    })

/**
 * A compressing Node stream, for a caller that feeds it itself (a server writing chunks it will
 * reuse: a chunk's write callback runs once the compressor has taken it).
 */
export const compressor = (compression: Exclude<Compression, "none">, options: CompressOptions = {}): Duplex =>
  duplexFor(compression, "compress", options)

export const compress = <E, R>(stream: Stream.Stream<Uint8Array, E, R>, compression: Compression, options: CompressOptions = {}): Stream.Stream<Uint8Array, E | CompressionError, R> =>
  through(stream, compression, "compress", options)

export const decompress = <E, R>(stream: Stream.Stream<Uint8Array, E, R>, compression: Compression): Stream.Stream<Uint8Array, E | CompressionError, R> =>
  through(stream, compression, "decompress")
