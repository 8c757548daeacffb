/**
 * The stderr channel of one connection (Nix's TunnelLogger): while an op runs, log lines,
 * activities and their results go to the client as stderr messages, ended by LAST or ERROR.
 * Messages produced while no op runs are kept and sent when the next one starts.
 */
import { Worker } from "../../core/wire/index.ts"
import { WireWriter } from "../../core/wire/encoder.ts"
import type { WireSink } from "../../io/wire-io.ts"

let nextActivity = 1
/** Read on first use, not when the module is evaluated: the startup snapshot evaluates it (src/cli/snapshot-warmup.ts). */
let activityBase: number | undefined

export class Tunnel {
  private canSend = false
  private pending: Array<Uint8Array> = []
  private readonly sink: WireSink
  private readonly minor: number
  /** The client's verbosity (SetOptions); plain log lines above it are not sent. */
  verbosity: number = Worker.Verbosity.Info

  constructor(sink: WireSink, minor: number) {
    this.sink = sink
    this.minor = minor
  }

  get working(): boolean { return this.canSend }

  private emit(bytes: Uint8Array): void {
    if (!this.canSend) { this.pending.push(bytes); return }
    this.sink.push(bytes)
    this.sink.flushAsync().catch(() => { /* the op notices when it next writes */ })
  }

  startWork(): void {
    this.canSend = true
    for (const p of this.pending) this.sink.push(p)
    this.pending = []
  }

  stopWork(): void {
    this.canSend = false
    this.sink.push(msg((w) => Worker.stderrLast(w)))
  }

  stopWorkWithError(message: string): void {
    this.canSend = false
    this.sink.push(msg((w) => Worker.stderrError(w, message, this.minor)))
  }

  log(text: string, level: number = Worker.Verbosity.Info): void {
    if (level > this.verbosity) return
    this.emit(msg((w) => Worker.stderrNext(w, text.endsWith("\n") ? text : text + "\n")))
  }

  /** Starts an activity; returns its id (0 when the client is too old for activities). */
  startActivity(type: number, text: string, fields: ReadonlyArray<Worker.Field> = [], level: number = Worker.Verbosity.Info, parent = 0): number {
    const id = (activityBase ??= (process.pid & 0xfffff) * 0x1_0000_0000) + nextActivity++
    if (this.minor < 20) {
      if (text !== "") this.log(text + "...", level)
      return id
    }
    this.emit(msg((w) => Worker.stderrStartActivity(w, id, level, type, text, fields, parent)))
    return id
  }

  stopActivity(id: number): void {
    if (this.minor < 20) return
    this.emit(msg((w) => Worker.stderrStopActivity(w, id)))
  }

  result(id: number, type: number, fields: ReadonlyArray<Worker.Field>): void {
    if (this.minor < 20) {
      if (type === Worker.ResultType.BuildLogLine && typeof fields[0] === "string") this.log(fields[0])
      return
    }
    this.emit(msg((w) => Worker.stderrResult(w, id, type, fields)))
  }
}

const msg = (f: (w: WireWriter) => void): Uint8Array => {
  const w = new WireWriter(64)
  f(w)
  return w.take()
}
