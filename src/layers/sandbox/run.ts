/**
 * `runInSandbox`: runs one derivation's builder in a sandbox that reproduces Nix 2.8's
 * (`sandbox = true`) and gives back where the outputs are. See command.ts for the mechanism and
 * chroot.ts / environment.ts for what the builder sees.
 */
import { chmodSync, chownSync, existsSync, lstatSync, readlinkSync, writeFileSync } from "node:fs"
import { getSystemErrorMessage } from "node:util"
import { Effect, Result } from "effect"
import type { Scope } from "effect"
import * as ByteString from "../../core/byte-string.ts"
import * as StorePath from "../../core/store-path.ts"
import { ensureBuildUsers } from "./build-user.ts"
import { createSkeleton, fixedOutputHostFiles, sandboxDevices, skeleton, type HostPath, type SkeletonEntry } from "./chroot.ts"
import { bwrapArguments, encodeArgs, sandboxCommand } from "./command.ts"
import { builderEnvironment, sandboxBuildDir } from "./environment.ts"
import {
  BuilderFailed, BuildSilenceTimedOut, BuildTimedOut, OutputMissing, SandboxSetupFailed, type SandboxError
} from "./errors.ts"
import { execHelperElf, helperSteps } from "./exec-helper.ts"
import { rootStageElf, rootStageSteps } from "./root-stage.ts"
import { checkHost } from "./host.ts"
import { makeLogTail } from "./log-tail.ts"
import { nixSeccompFilter } from "./seccomp.ts"
import type { BuildUser, RunResult, RunSpec } from "./spec.ts"
import { startBuild, type Completion } from "./supervisor.ts"
import { lockBuildUser } from "./user-lock.ts"
import { buildDirectory, buildParent, chrootStore, chrootTree, scratchDirectory } from "./work-dirs.ts"

/** The C library's wording ("No such file or directory"); libuv's is the same, lower-cased. */
const strerror = (errno: number) => {
  const text = getSystemErrorMessage(-errno)
  return text.charAt(0).toUpperCase() + text.slice(1)
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** Checks that every input and output is a store path directly in the store directory. */
const checkPaths = (spec: RunSpec): Result.Result<void, string> => {
  for (const [kind, paths] of [["input", spec.inputPaths], ["output", spec.outputPaths]] as const) {
    for (const path of paths) {
      const parsed = StorePath.parse(path, spec.storeDir)
      if (Result.isFailure(parsed)) return Result.fail(`${kind} ${parsed.failure.message}`)
    }
  }
  if (spec.builder.startsWith("builtin:")) return Result.fail(`builtin builder '${spec.builder}' does not run in a sandbox`)
  for (const name of Object.keys(spec.extraBuildFiles ?? {})) {
    if (name === "" || name === "." || name === ".." || name.includes("/")) {
      return Result.fail(`invalid build directory file name '${name}'`)
    }
  }
  return Result.succeed(undefined)
}

/** What of the host's /dev and /etc the sandbox gets (Nix decides the same way). */
interface HostFacts {
  readonly devices: ReadonlyArray<string>
  /** fixedOutputHostFiles that exist. */
  readonly hostFiles: ReadonlyArray<string>
  /** A private devpts instance is possible (the host has /dev/pts/ptmx). */
  readonly devPts: boolean
  readonly devShm: boolean
}

const hostFacts = (): HostFacts => ({
  devices: sandboxDevices(existsSync("/dev/kvm")),
  hostFiles: fixedOutputHostFiles.filter((file) => existsSync(file)),
  devPts: existsSync("/dev/pts/ptmx"),
  devShm: existsSync("/dev/shm")
})

/** `sandbox-paths` entries (`PATH`, `TARGET=SOURCE`, `PATH?`) as they are on the host; missing ones are left out. */
const resolveSandboxPaths = (entries: ReadonlyArray<string>): Array<HostPath> => entries.flatMap((entry): Array<HostPath> => {
  const e = entry.endsWith("?") ? entry.slice(0, -1) : entry
  const eq = e.indexOf("=")
  const target = eq >= 0 ? e.slice(0, eq) : e
  const source = eq >= 0 ? e.slice(eq + 1) : e
  if (!target.startsWith("/") || !source.startsWith("/")) return []
  try {
    const st = lstatSync(source)
    if (st.isSymbolicLink()) return [{ target, source, kind: "symlink" as const, link: readlinkSync(source) }]
    return [{ target, source, kind: st.isDirectory() ? "dir" as const : "file" as const }]
  } catch {
    return []
  }
})

interface Prepared {
  readonly rootDir: string
  /** The chroot's store directory (bound at the store dir inside): where the outputs are built. */
  readonly chrootStore: string
  readonly helperPath: string
  readonly seccompPath: string
  readonly argsPath: string
  readonly rootStagePath: string
}

/** The chroot of a build: its tree's entries (reusable by builds alike) and its store directory's. */
interface Chroot {
  readonly inputs: ReadonlyArray<{ readonly path: string; readonly realPath: string; readonly isDirectory: boolean }>
  readonly unsandboxed: boolean
  readonly hostPaths: ReadonlyArray<HostPath>
  /** The tree without the store directory's contents. */
  readonly tree: ReadonlyArray<SkeletonEntry>
  /** The store directory's entries, relative to it ("/" is the directory itself). */
  readonly store: ReadonlyArray<SkeletonEntry>
}

const chrootOf = (spec: RunSpec, host: HostFacts): Chroot => {
  // Each input once; an output is never an input (Nix drops outputs from the chroot's paths too).
  const inputs = [...new Set(spec.inputPaths)].filter((path) => !spec.outputPaths.includes(path)).map((path) => {
    const realPath = `${spec.realStoreDir}/${path.slice(spec.storeDir.length + 1)}`
    return { path, realPath, isDirectory: lstatSync(realPath).isDirectory() }
  })
  // Fixed-output and impure derivations are not sandboxed from the network (Nix: !isSandboxed()).
  const unsandboxed = spec.fixedOutput || spec.impure === true
  const hostPaths = resolveSandboxPaths(spec.sandboxPaths ?? [])
  const entries = skeleton({
    storeDir: spec.storeDir, buildDir: sandboxBuildDir, fixedOutput: unsandboxed,
    inputs, devices: host.devices, hostFiles: host.hostFiles, devPts: host.devPts, hostPaths
  })
  // The store directory (the inputs' mount points and links, and the outputs the builder makes)
  // lies beside the build directory and is bound over the tree's: the tree itself then holds
  // nothing of one build, and the next build alike reuses it (chrootTree).
  const inStore = (path: string) => path.startsWith(spec.storeDir + "/")
  return {
    inputs, unsandboxed, hostPaths,
    tree: entries.filter((e) => !inStore(e.path)),
    store: [
      { kind: "dir", path: "/", mode: 0o1775, buildGroup: true },
      ...entries.filter((e) => inStore(e.path)).map((e) => ({ ...e, path: e.path.slice(spec.storeDir.length) }))
    ]
  }
}

/** Writes the build directory's files and the helper files (as root). */
const prepare = (
  spec: RunSpec, user: BuildUser, host: HostFacts, chroot: Chroot,
  dirs: { readonly workDir: string; readonly rootDir: string; readonly chrootStore: string; readonly hostBuildDir: string },
  seccomp: Uint8Array
): Prepared => {
  const { workDir, rootDir, chrootStore, hostBuildDir } = dirs
  const { devices, hostFiles, devPts } = host
  const { inputs, unsandboxed, hostPaths } = chroot

  const environment = builderEnvironment({
    storeDir: spec.storeDir, cores: spec.cores, env: spec.env, fixedOutput: spec.fixedOutput, impure: spec.impure,
    structuredAttrs: spec.structuredAttrs, hostBuildDir, hostEnv: spec.hostEnv ?? process.env
  })
  for (const file of environment.files) {
    const path = `${hostBuildDir}/${file.name}`
    writeFileSync(path, ByteString.encode(file.contents), { mode: 0o644 })
    chmodSync(path, 0o644)
    chownSync(path, user.uid, user.gid)
  }
  for (const [name, contents] of Object.entries(spec.extraBuildFiles ?? {})) {
    writeFileSync(`${hostBuildDir}/${name}`, ByteString.encode(contents), { mode: 0o644 })
    chmodSync(`${hostBuildDir}/${name}`, 0o644)
  }

  const write = (name: string, data: Uint8Array, mode: number) => {
    writeFileSync(`${workDir}/${name}`, data, { mode })
    chmodSync(`${workDir}/${name}`, mode)
    return `${workDir}/${name}`
  }
  const bwrapOptions = bwrapArguments({
    rootDir, chrootStore, storeDir: spec.storeDir, hostBuildDir, storeMount: `${workDir}/store`,
    directoryInputs: inputs.filter((i) => i.isDirectory).map((i) => i.path),
    devices, fixedOutput: unsandboxed, hostFiles, env: environment.variables,
    hostBinds: hostPaths.filter((p) => p.kind !== "symlink").map((p) => [p.source, p.target] as const)
  })
  createSkeleton(workDir, [{ kind: "dir", path: "/store", mode: 0o755 }], user.gid)
  const rootStage = rootStageElf({
    realStoreDir: spec.realStoreDir, storeMount: `${workDir}/store`,
    devShm: host.devShm ? `${rootDir}/dev/shm` : undefined, devPts: devPts ? `${rootDir}/dev/pts` : undefined,
    uid: user.uid, gid: user.gid, personality: spec.platform === "i686-linux" ? "i686" : "x86_64"
  })
  return {
    rootDir,
    chrootStore,
    rootStagePath: write("root-stage", rootStage, 0o500),
    helperPath: write("exec-helper", helperElf(), 0o555),
    seccompPath: write("seccomp.bpf", seccomp, 0o444),
    argsPath: write("bwrap-args", encodeArgs(bwrapOptions), 0o400)
  }
}

/** Turns how the sandbox ended into the result or the typed error. */
const interpret = (spec: RunSpec, completion: Completion, logTail: string): Result.Result<void, SandboxError> => {
  const drvName = spec.drvName
  if (completion.limit === "timeout") return Result.fail(new BuildTimedOut({ drvName, seconds: spec.timeoutSeconds ?? 0, logTail }))
  if (completion.limit === "silence") {
    return Result.fail(new BuildSilenceTimedOut({ drvName, seconds: spec.maxSilentSeconds ?? 0, logTail }))
  }
  const status = completion.status
  const failedAt = status.indexOf(1)
  if (failedAt >= 0) {
    const steps: Record<number, string> = { ...helperSteps, ...rootStageSteps }
    const step = steps[status[failedAt + 1]!] ?? "starting the builder"
    const errno = status[failedAt + 2] ?? 0
    const what = step === helperSteps[6] ? `executing '${spec.builder}'` : step
    return Result.fail(new SandboxSetupFailed({ drvName, reason: `${what}: ${strerror(errno)}`, logTail }))
  }
  if (!status.includes(2)) {
    const reason = completion.bwrapStderr.trim() || `the sandbox exited (status ${completion.exitCode ?? "unknown"}) before starting the builder`
    return Result.fail(new SandboxSetupFailed({ drvName, reason, logTail }))
  }
  if (completion.exitCode === undefined) {
    const reason = `the sandbox ended without the builder's exit status (bwrap: ${completion.processExit}; status: ${completion.bwrapStatus.trim()})`
    return Result.fail(new SandboxSetupFailed({ drvName, reason, logTail }))
  }
  if (completion.exitCode !== 0) return Result.fail(new BuilderFailed({ drvName, exitCode: completion.exitCode, logTail }))
  return Result.succeed(undefined)
}

/**
 * Runs `spec.builder` in a sandbox like Nix 2.8's and returns where its outputs are. Everything it
 * creates (directories, the process tree) belongs to the Scope: the outputs stay where they are
 * until the scope closes; failure or interruption kills the build and removes everything.
 */
export const runInSandbox = (spec: RunSpec): Effect.Effect<RunResult, SandboxError, Scope.Scope> =>
  Effect.gen(function*() {
    const drvName = spec.drvName
    const setupFailed = (reason: string) => new SandboxSetupFailed({ drvName, reason, logTail: "" })
    const tools = yield* checkHost
    const checked = checkPaths(spec)
    if (Result.isFailure(checked)) return yield* setupFailed(checked.failure)
    const seccomp = seccompFilter()
    if (Result.isFailure(seccomp)) return yield* setupFailed(seccomp.failure)
    const user = yield* lockBuildUser(spec.buildUser !== undefined ? [spec.buildUser] : yield* ensureBuildUsers(), tools, drvName)

    const parent = yield* buildParent(drvName)
    const workDir = yield* scratchDirectory(parent, drvName)
    const hostBuildDir = yield* buildDirectory(parent, drvName, user.uid, user.gid)
    const host = hostFacts()
    const chroot = yield* Effect.try({
      try: () => chrootOf(spec, host),
      catch: (e) => setupFailed(`preparing the sandbox: ${messageOf(e)}`)
    })
    const rootDir = yield* chrootTree(parent, `${user.gid}:${JSON.stringify(chroot.tree)}`, drvName, (dir) => createSkeleton(dir, chroot.tree, user.gid))
    const storeDir = yield* chrootStore(parent, chroot.store, user.gid, drvName)
    const prepared = yield* Effect.try({
      try: () => prepare(spec, user, host, chroot, { workDir, rootDir, chrootStore: storeDir, hostBuildDir }, seccomp.success),
      catch: (e) => setupFailed(`preparing the sandbox: ${messageOf(e)}`)
    })

    const tail = makeLogTail()
    const command = sandboxCommand(tools, { rootStage: prepared.rootStagePath, builder: spec.builder, args: spec.args })
    const running = yield* startBuild({
      file: command.file, args: command.args,
      helperPath: prepared.helperPath, seccompPath: prepared.seccompPath, argsPath: prepared.argsPath,
      buildUid: user.uid, timeoutSeconds: spec.timeoutSeconds, maxSilentSeconds: spec.maxSilentSeconds,
      onLog: (chunk) => { tail.push(chunk); spec.onLog?.(chunk) }
    }).pipe(Effect.mapError((e) => setupFailed(`starting the sandbox: ${messageOf(e)}`)))
    const completion = yield* running.completion
    const logTail = tail.text()
    const outcome = interpret(spec, completion, logTail)
    if (Result.isFailure(outcome)) return yield* outcome.failure

    const outputs: Record<string, string> = {}
    for (const output of spec.outputPaths) {
      const physical = prepared.chrootStore + output.slice(spec.storeDir.length)
      if (!exists(physical)) return yield* new OutputMissing({ drvName, output, logTail })
      outputs[output] = physical
    }
    return { outputs, logTail }
  })

/** The seccomp filter and the exec helper are pure; each is made once per process. */
let seccompCache: ReturnType<typeof nixSeccompFilter> | undefined
const seccompFilter = () => (seccompCache ??= nixSeccompFilter())
let helperCache: Uint8Array | undefined
const helperElf = () => (helperCache ??= execHelperElf())

/** Exists as anything, a dangling symlink included. */
const exists = (path: string) => {
  try { lstatSync(path); return true } catch { return false }
}
