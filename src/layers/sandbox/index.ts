/**
 * Sandboxed builds bit-identical to Nix 2.8 with `sandbox = true`: run one derivation's builder
 * (`runInSandbox`), then put its outputs into canonical form (`canonicalise`).
 */
export { runInSandbox } from "./run.ts"
export { canonicalise, canonicalMode } from "./canonicalise.ts"
export { buildUserCandidates, ensureBuildUser, ensureBuildUsers, findBuildUsers } from "./build-user.ts"
export { lockBuildUser } from "./user-lock.ts"
export { checkHost, type HostTools } from "./host.ts"
export { builderEnvironment, passAsFileName, sandboxBuildDir } from "./environment.ts"
export { nixSeccompFilter, nixSeccompProgram } from "./seccomp.ts"
export type { BuildUser, RunResult, RunSpec } from "./spec.ts"
export {
  BuilderFailed, BuildSilenceTimedOut, BuildTimedOut, BuildUserUnavailable, CanonicaliseFailed, OutputMissing,
  SandboxSetupFailed, SandboxUnavailable, type SandboxError
} from "./errors.ts"
export { layer, make as makeBubblewrap, systems } from "./bubblewrap.ts"
export { runHook } from "./post-build-hook.ts"
