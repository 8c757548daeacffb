/**
 * Remote builders as a `Sandbox`: a build goes to a machine of Nix's machines list (`--builders`)
 * that builds its system with the features it needs, as Nix's build hook does: the input closure
 * is copied to the machine over the serve protocol (what it lacks), the derivation is sent whole
 * (BuildDerivation) and built there while its log streams back, and the outputs' NARs come back.
 * The builder (src/build) then checks and registers them like any sandbox's outputs.
 *
 * Each machine takes up to its max-jobs builds at once; the least loaded (relative to its speed
 * factor) with a free slot is chosen. Without a free machine a build runs in the local sandbox
 * when local builds are allowed (max-jobs > 0) and possible; otherwise it waits for a machine.
 */
import { Effect, Layer, Semaphore, Stream, type Scope } from "effect"
import { createWriteStream, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Machines from "../../core/machines.ts"
import * as StorePath from "../../core/store-path.ts"
import { Serve, Worker } from "../../core/wire/index.ts"
import { readFileStream } from "../../io/file-stream.ts"
import { topoSortInfos } from "../../services/closure.ts"
import type { BuiltOutput } from "../../services/build-host.ts"
import { Sandbox, type SandboxApi, type SandboxSpec } from "../../services/sandbox.ts"
import { BuildFailed } from "../../services/store-build.ts"
import { StoreIoError } from "../../services/store-errors.ts"
import { StoreRead, type StoreReadApi } from "../../services/store-read.ts"
import { openServe, type RemoteError, type SshTarget } from "./serve-client.ts"

export interface RemoteBuildersOptions {
  readonly machines: ReadonlyArray<Machines.Machine>
  /** Builds that may run locally at once (Nix's max-jobs); 0: only on the machines. */
  readonly localJobs: number
  /** Told which machine a build went to. */
  readonly onDispatch?: ((drvPath: string, machine: string) => void) | undefined
}

interface Slot {
  readonly machine: Machines.Machine
  readonly permits: Semaphore.Semaphore
  running: number
}

const targetOf = (m: Machines.Machine): SshTarget => {
  const url = new URL(m.uri.replace(/^ssh:\/\//, "http://"))
  const host = `${url.username ? `${decodeURIComponent(url.username)}@` : ""}${url.hostname}${url.port ? `:${url.port}` : ""}`
  return {
    host,
    sshKey: url.searchParams.get("ssh-key") ?? (m.sshKey || undefined),
    publicHostKey: url.searchParams.get("base64-ssh-public-host-key") ?? (m.publicHostKey || undefined),
    remoteProgram: url.searchParams.get("remote-program") ?? undefined,
    remoteStore: url.searchParams.get("remote-store") ?? undefined
  }
}

const logTail = (lines: Array<string>, chunk: Uint8Array, decoder: { decode: (b: Uint8Array, o: { stream: boolean }) => string }) => {
  lines.push(...decoder.decode(chunk, { stream: true }).split("\n"))
  if (lines.length > 25) lines.splice(0, lines.length - 25)
}

/** The remote part of one build, in the build's scope. */
const buildOn = (machine: Machines.Machine, spec: SandboxSpec, store: StoreReadApi): Effect.Effect<Record<string, BuiltOutput>, BuildFailed, Scope.Scope> => {
  const drvPath = StorePath.print(spec.drvPath, spec.storeDir)
  const target = targetOf(machine)
  const fail = (reason: string, tail = "") => new BuildFailed({ drvPath, reason: `building on '${machine.uri}': ${reason}`, logTail: tail })
  const remoteFailed = (e: RemoteError | { readonly message: string }) => fail(e.message)
  return Effect.gen(function*() {
    const drv = spec.derivation
    if (!drv) return yield* fail("the builder did not give the derivation")
    const conn = yield* Effect.mapError(openServe(target), remoteFailed)
    const storeDir = spec.storeDir
    // the input closure, what the machine lacks of it, dependencies first
    const present = new Set((yield* Effect.mapError(conn.queryValidPaths(spec.inputPaths, storeDir), remoteFailed)).map(StorePath.baseName))
    const missing = spec.inputPaths.filter((p) => !present.has(StorePath.baseName(p)))
    const infos = yield* Effect.mapError(Effect.forEach(missing, (p) => store.queryPathInfo(p), { concurrency: 8 }), remoteFailed)
    const ordered = yield* Effect.mapError(Effect.fromResult(topoSortInfos(infos, storeDir)), remoteFailed)
    for (const info of ordered) {
      yield* Effect.mapError(conn.addToStoreNar(info, store.narFromPath(info.path), storeDir), remoteFailed)
    }
    // the build, its log streamed back
    const lines: Array<string> = []
    const decoder = new TextDecoder()
    const settings: Serve.BuildSettings = { ...Serve.defaultBuildSettings, maxSilentTime: spec.maxSilentSeconds ?? 0, buildTimeout: spec.timeoutSeconds ?? 0 }
    const result = yield* Effect.mapError(
      conn.buildDerivation(spec.drvPath, drv, spec.inputPaths.map((p) => StorePath.print(p, storeDir)).sort(), storeDir, settings,
        (chunk) => { logTail(lines, chunk, decoder); spec.onLog?.(chunk) }),
      remoteFailed)
    const ok = [Worker.BuildStatus.Built, Worker.BuildStatus.Substituted, Worker.BuildStatus.AlreadyValid, Worker.BuildStatus.ResolvesToAlreadyValid] as ReadonlyArray<number>
    if (!ok.includes(result.status)) return yield* fail(result.errorMsg || `build status ${result.status}`, lines.join("\n").trim())
    // the outputs, each NAR kept in a file for the build's scope (the builder reads them more than once)
    const dir = mkdtempSync(join(tmpdir(), "b3-remote-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const outputs: Record<string, BuiltOutput> = {}
    for (const [i, path] of spec.outputPaths.entries()) {
      const file = join(dir, `${i}.nar`)
      const out = createWriteStream(file)
      yield* Stream.runForEach(conn.dumpStorePath(path, storeDir), (chunk) => Effect.promise(() =>
        new Promise<void>((resolve) => { if (out.write(chunk)) resolve(); else out.once("drain", () => resolve()) }))).pipe(
        Effect.mapError(remoteFailed),
        Effect.ensuring(Effect.promise(() => new Promise<void>((resolve) => { out.end(() => resolve()) }))))
      outputs[StorePath.print(path, storeDir)] = {
        nar: readFileStream(file, (e) => new StoreIoError({ store: machine.uri, operation: `read the output ${StorePath.print(path, storeDir)}`, reason: String(e) }))
      }
    }
    return outputs
  })
}

/**
 * A Sandbox that sends builds to remote machines, falling back to the Sandbox it is given (the
 * local one) as described above. Needs the store's StoreRead to read inputs from.
 */
export const layer = (options: RemoteBuildersOptions): Layer.Layer<Sandbox, never, Sandbox | StoreRead> =>
  Layer.effect(Sandbox, Effect.gen(function*() {
    const local = yield* Sandbox
    const store = yield* StoreRead
    const slots: Array<Slot> = options.machines.filter((m) => m.maxJobs > 0).map((machine) => ({ machine, permits: Semaphore.makeUnsafe(machine.maxJobs), running: 0 }))
    const localPermits = Semaphore.makeUnsafe(Math.max(0, options.localJobs))
    const systems = [...new Set([...local.systems.filter(() => options.localJobs > 0), ...slots.flatMap((s) => s.machine.systems)])]

    const onSlot = (slot: Slot, spec: SandboxSpec) => Effect.gen(function*() {
      slot.running++
      yield* Effect.addFinalizer(() => Effect.sync(() => { slot.running-- }))
      options.onDispatch?.(StorePath.print(spec.drvPath, spec.storeDir), slot.machine.uri)
      const outputs = yield* buildOn(slot.machine, spec, store)
      return { outputs, logTail: "" }
    })

    const run: SandboxApi["run"] = (spec) => Effect.gen(function*() {
      const system = spec.platform ?? "x86_64-linux"
      const features = (spec.env["requiredSystemFeatures"] ?? "").split(/\s+/).filter((f) => f.length > 0)
      const candidates = slots.filter((s) => Machines.canBuild(s.machine, system, features))
      const localOk = options.localJobs > 0 && local.systems.includes(system) && features.length === 0
      // least loaded relative to speed, then the faster, then the less loaded
      const ranked = [...candidates].sort((a, b) =>
        a.running / a.machine.speedFactor - b.running / b.machine.speedFactor || b.machine.speedFactor - a.machine.speedFactor || a.running - b.running)
      for (const slot of ranked) {
        if (yield* Semaphore.takeIfAvailable(slot.permits, 1)) {
          yield* Effect.addFinalizer(() => Semaphore.release(slot.permits, 1))
          return yield* onSlot(slot, spec)
        }
      }
      if (localOk && (yield* Semaphore.takeIfAvailable(localPermits, 1))) {
        yield* Effect.addFinalizer(() => Semaphore.release(localPermits, 1))
        return yield* local.run(spec)
      }
      if (ranked.length > 0) {
        const slot = ranked[0]!
        yield* Semaphore.take(slot.permits, 1)
        yield* Effect.addFinalizer(() => Semaphore.release(slot.permits, 1))
        return yield* onSlot(slot, spec)
      }
      if (localOk) {
        yield* Semaphore.take(localPermits, 1)
        yield* Effect.addFinalizer(() => Semaphore.release(localPermits, 1))
        return yield* local.run(spec)
      }
      return yield* new BuildFailed({
        drvPath: StorePath.print(spec.drvPath, spec.storeDir), logTail: "",
        reason: `no machine can build it: it needs a '${system}'${features.length ? ` with features ${features.join(", ")}` : ""}; the machines are ${options.machines.map((m) => `${m.uri} (${m.systems.join(", ")}${m.supportedFeatures.length ? `; ${m.supportedFeatures.join(", ")}` : ""})`).join(", ") || "none"}${options.localJobs === 0 ? ", and local builds are off (max-jobs 0)" : ""}`
      })
    })

    // the post-build-hook runs here, whichever machine built (as in Nix, where the goal runs it)
    return Sandbox.of({ systems, run, runHook: local.runHook })
  }))
