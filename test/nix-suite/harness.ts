/**
 * Runs Nix 2.8.0's own test scripts (tests/*.sh from its source, fetched by
 * scripts/fetch-nix-tests.sh) against `b3 daemon`, the way Nix's CI runs them against another
 * daemon: `NIX_DAEMON_PACKAGE` names a package whose `bin/nix-daemon` common.sh starts for each
 * script (here a wrapper that runs `b3 daemon` over the test's store) and every Nix command of the
 * script then goes through it (`NIX_REMOTE=daemon`). As in Nix's `make installcheck`, each script
 * runs after `init.sh` in a fresh TEST_ROOT; exit 0 is a pass, 99 a skip, anything else a failure.
 *
 * Builders in Nix's tests use the host's /bin/bash and coreutils (Nix runs them unsandboxed there);
 * b3 always builds in its sandbox, so the wrapper shows the host's /bin, /usr and /lib* read-only
 * inside (Nix's `sandbox-paths`).
 */
import { spawnSync } from "node:child_process"
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url))
export const nixSource = join(repoRoot, ".cache", "nix-2.8.0")
const b3Bin = join(repoRoot, "bin", "b3")

export const haveNixTests = () => existsSync(join(nixSource, "tests", "common.sh.in"))

const substitutions: Record<string, string> = {
  bindir: "/usr/bin", coreutils: "/usr/bin", dot: "", bash: "/bin/bash", sandbox_shell: "/bin/busybox",
  PACKAGE_VERSION: "2.8.0", system: "x86_64-linux"
}

const fill = (template: string) => template.replace(/@([A-Za-z_]+)@/g, (m, name: string) => substitutions[name] ?? m)

export interface Outcome {
  readonly script: string
  readonly result: "pass" | "fail" | "skip"
  readonly status: number
  readonly seconds: number
  readonly log: string
}

/** A working copy of tests/ with common.sh and config.nix generated, and the fake daemon package. */
export const prepare = (): { readonly dir: string; readonly testsDir: string; readonly daemonPackage: string; readonly cleanup: () => void } => {
  const dir = mkdtempSync(join(tmpdir(), "b3-nixsuite-"))
  chmodSync(dir, 0o755) // build users must reach the test stores
  const testsDir = join(dir, "tests")
  cpSync(join(nixSource, "tests"), testsDir, { recursive: true })
  for (const file of ["common.sh", "config.nix", "ca/config.nix"]) {
    const template = join(testsDir, `${file}.in`)
    if (existsSync(template)) writeFileSync(join(testsDir, file), fill(readFileSync(template, "utf8")))
  }
  const daemonPackage = join(dir, "b3-daemon-package")
  mkdirSync(join(daemonPackage, "bin"), { recursive: true })
  writeFileSync(join(daemonPackage, "bin", "nix-daemon"), [
    "#!/bin/sh",
    "# nix-daemon for Nix's test suite: b3 daemon over the test's store",
    `if [ "$1" = "--version" ]; then echo "nix-daemon (Nix) 2.8.0"; exit 0; fi`,
    "# build users come from the machine's user pool (/nix/var/nix/userpool), shared with every Nix and b3",
    "# building here, not from the test's private state dir: two pools would hand out the same nixbld user.",
    "# NIX_STATE_DIR stays the test's: a post-build-hook inherits it, and its nix commands use the test's store",
    `B3_USER_POOL_DIR=/nix/var/nix/userpool exec ${b3Bin} --quiet daemon --store "local?store=$NIX_STORE_DIR&state=$NIX_STATE_DIR&log=$NIX_LOG_DIR" --socket "$NIX_DAEMON_SOCKET_PATH" --trust all --sandbox-paths "/bin /usr /lib /lib64? /etc/ssl?"`,
    ""
  ].join("\n"), { mode: 0o755 })
  return { dir, testsDir, daemonPackage, cleanup: () => { spawnSync("chmod", ["-R", "u+w", dir]); rmSync(dir, { recursive: true, force: true }) } }
}

/** Runs one script (path relative to tests/) as `make installcheck` does, with b3's daemon. */
export const runScript = (prepared: ReturnType<typeof prepare>, script: string, timeoutSeconds = 120): Outcome => {
  const name = script.replace(/\.sh$/, "")
  const tmp = join(prepared.dir, "tmp", name)
  mkdirSync(tmp, { recursive: true })
  const base: NodeJS.ProcessEnv = {
    PATH: `/usr/bin:/bin:/usr/sbin:/sbin`, HOME: tmp, TMPDIR: tmp, TEST_NAME: name, LANG: "C.UTF-8",
    // Nix's own configuration comes from $NIX_CONF_DIR (init.sh writes it); nothing from the caller
    NIX_CONFIG: undefined, NIX_REMOTE: undefined
  }
  for (const key of Object.keys(base)) if (base[key] === undefined) delete base[key]
  // init.sh: a fresh TEST_ROOT with a local store (Nix's own nix-store --init), no daemon yet
  spawnSync("bash", ["-e", "init.sh"], { cwd: prepared.testsDir, env: base, stdio: "ignore", timeout: 60_000 })
  const started = Date.now()
  // timeout(1) signals its whole process group: the script and the daemon it started in the background
  const r = spawnSync("timeout", ["--kill-after=10", String(timeoutSeconds), "bash", "-e", script.slice(script.lastIndexOf("/") + 1)], {
    cwd: join(prepared.testsDir, dirname(script)),
    env: { ...base, NIX_DAEMON_PACKAGE: prepared.daemonPackage },
    maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "pipe"]
  })
  const status = r.status ?? -1
  const log = `${r.stdout?.toString() ?? ""}${r.stderr?.toString() ?? ""}${r.error ? `\n[harness] ${r.error.message}` : ""}`
  return { script, status, result: status === 0 ? "pass" : status === 99 ? "skip" : "fail", seconds: (Date.now() - started) / 1000, log }
}

/** Every test script of the suite (as tests/local.mk lists them). */
export const allScripts = (): ReadonlyArray<string> => {
  const mk = readFileSync(join(nixSource, "tests", "local.mk"), "utf8")
  const block = mk.slice(mk.indexOf("nix_tests ="), mk.indexOf("ifeq"))
  return block.split(/\s+/).filter((w) => w.endsWith(".sh"))
}
