/**
 * Differential: derivations built by real Nix 2.8 (`nix-build --option sandbox true` into a scratch
 * chroot store) and by `runInSandbox` from the same derivation (read with `nix show-derivation`)
 * must give byte-identical outputs: same NAR sha256 after canonicalisation. The builders record
 * what they see — environment and its order, argv, identity and id maps, hostname, tty, file
 * system layout, owners and modes, mounts, capabilities, seccomp, personality, network — so the
 * comparison covers the sandbox broadly. Fixed-output derivations (whose output is fixed by its
 * hash) are compared through the build log instead.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { canonicalise, findBuildUsers, runInSandbox, type BuildUser, type RunSpec } from "../../src/layers/sandbox/index.ts"
import { addBusybox } from "../support/busybox.ts"
import { makeScratch, nix, nixBytes, nixEnv, removeScratch } from "../support/nix.ts"

let scratch: string
let storeRoot: string
let bb: string
let buildUsers: ReadonlyArray<BuildUser>

beforeAll(async () => {
  buildUsers = await Effect.runPromise(findBuildUsers)
  scratch = makeScratch("b3-sandbox-nix-")
  storeRoot = join(scratch, "root")
  bb = addBusybox(storeRoot)
})
afterAll(() => removeScratch(scratch))

const cores = 2

interface ShownDerivation {
  readonly outputs: Record<string, { path: string; hash?: string }>
  readonly inputSrcs: ReadonlyArray<string>
  readonly system: string
  readonly builder: string
  readonly args: ReadonlyArray<string>
  readonly env: Record<string, string>
}

/**
 * Writes `<name>.nix`: a derivation running `script` (busybox's sh; @bb@ stands for busybox's store
 * path) with the extra Nix `attributes`; returns the file's path.
 */
const writeDerivation = (name: string, attributes: string, script: string): string => {
  writeFileSync(join(scratch, `${name}.sh`), script.replaceAll("@bb@", bb))
  const file = join(scratch, `${name}.nix`)
  writeFileSync(file, `let bb = builtins.storePath ${bb}; script = builtins.readFile ./${name}.sh; in derivation {
    name = "${name}"; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = [ "-c" script ];
    ${attributes} }`)
  return file
}

/** nix-build in the scratch store with the sandbox on; returns the build log (stderr). */
const nixBuild = (file: string, env: NodeJS.ProcessEnv = {}): string => {
  const result = spawnSync("nix-build", [
    file, "--store", storeRoot, "--no-out-link",
    "--option", "sandbox", "true", "--option", "substituters", "", "--option", "cores", String(cores)
  ], { env: { ...nixEnv, ...env } })
  if (result.status !== 0) throw new Error(`nix-build ${file} failed: ${result.stderr.toString()}`)
  return result.stderr.toString()
}

const showDerivation = (file: string): ShownDerivation & { readonly name: string } => {
  const drvPath = nix("nix-instantiate", ["--store", storeRoot, file])
  const shown = JSON.parse(nix("nix", ["show-derivation", "--store", storeRoot, drvPath])) as Record<string, ShownDerivation>
  // /nix/store/<32 chars hash>-<name>.drv
  return { ...shown[drvPath]!, name: drvPath.slice("/nix/store/".length + 33, -".drv".length) }
}

const specOf = (drv: ShownDerivation & { readonly name: string }, extra: Partial<RunSpec> = {}): RunSpec => ({
  storeDir: "/nix/store",
  realStoreDir: join(storeRoot, "nix/store"),
  drvName: drv.name,
  builder: drv.builder,
  args: drv.args,
  env: drv.env,
  inputPaths: nix("nix-store", ["--store", storeRoot, "-qR", ...drv.inputSrcs]).split("\n"),
  outputPaths: Object.values(drv.outputs).map((o) => o.path),
  fixedOutput: Object.values(drv.outputs).some((o) => o.hash !== undefined),
  platform: drv.system,
  cores,
  ...extra
})

const narSha256 = (path: string) => createHash("sha256").update(nixBytes("nix-store", ["--dump", path])).digest("hex")

/** A readable picture of a tree (for a useful diff when the hashes differ). */
const treeOf = (root: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (path: string, rel: string) => {
    const st = lstatSync(path)
    if (st.isSymbolicLink()) out[rel] = `-> ${readlinkSync(path)}`
    else if (st.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name), `${rel}/${name}`)
    else out[rel] = `${st.mode & 0o100 ? "x " : ""}${readFileSync(path, "latin1")}`
  }
  walk(root, "")
  return out
}

/** Builds with Nix and with runInSandbox; returns both outputs' trees and NAR hashes. */
const buildBoth = (file: string, extra: (nixOutput: string) => Partial<RunSpec> = () => ({})) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    nixBuild(file)
    const drv = showDerivation(file)
    const output = drv.outputs["out"]!.path
    const nixCopy = join(storeRoot, output)
    const result = yield* runInSandbox(specOf(drv, extra(nixCopy)))
    const ours = result.outputs[output]!
    yield* canonicalise(ours)
    return {
      nix: { tree: treeOf(nixCopy), nar: narSha256(nixCopy) },
      ours: { tree: treeOf(ours), nar: narSha256(ours) }
    }
  })))

/** Builds both ways, expects the same tree and NAR hash, and returns Nix's tree for further checks. */
const expectSameOutput = async (file: string, extra?: (nixOutput: string) => Partial<RunSpec>) => {
  const { nix: theirs, ours } = await buildBoth(file, extra)
  expect(ours.tree).toEqual(theirs.tree)
  expect(ours.nar).toBe(theirs.nar)
  return theirs.tree
}

/** Everything the builder sees about itself and its surroundings. */
const identityScript = `
B=@bb@/bin/busybox
$B mkdir -p $out/sub
# The builder's own descriptors, seen before anything is redirected in this shell (pid 1):
# builtins only redirect their output, external commands look at /proc/1.
for fd in 0 1 2; do
  if [ -t $fd ]; then r="tty"; else r="not a tty"; fi
  echo "fd $fd: $r" >> $out/fds
done
$B stat -L -c '%F %a %u %g' /proc/1/fd/0 /proc/1/fd/1 /proc/1/fd/2 >> $out/fds
$B ls /proc/1/fd >> $out/fds
for fd in 0 1 2; do $B readlink /proc/1/fd/$fd | $B sed 's,/dev/pts/[0-9]*,/dev/pts/N,' >> $out/fds; done
$B stty -g -F /proc/1/fd/2 >> $out/fds
{
  echo "argv0=$0 pid=$$ ppid=$PPID"
  echo "== cmdline"; $B tr '\\0' '\\n' < /proc/1/cmdline
  echo "== environ"; $B tr '\\0' '\\n' < /proc/1/environ
  echo "== identity"; $B id; $B cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups
  $B hostname; $B cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname
  umask; pwd; echo "PWD=$PWD"
  echo "== files"; $B ls -a / /dev /dev/pts /dev/shm /nix /nix/store /tmp /build /etc
  $B stat -c '%n %a %u %g %F' / /build /tmp /etc /etc/passwd /etc/group /etc/hosts /nix /nix/store \\
    /dev /dev/null /dev/tty /dev/shm /dev/pts /dev/pts/ptmx /dev/ptmx /dev/fd /dev/stdin /proc $out @bb@ @bb@/bin/busybox
  $B cat /etc/passwd /etc/group /etc/hosts
  echo "== mounts"; $B awk '{print $5, $(NF-2)}' /proc/self/mountinfo | $B sort
  echo "== process"; $B grep -E '^(Umask|State|PPid|TracerPid|Uid|Gid|Groups|NStgid|NSpid|NSpgid|NSsid|Sig|Cap|NoNewPrivs|Seccomp|Speculation)' /proc/self/status
  $B cat /proc/self/personality
  $B grep -E 'core|stack|processes' /proc/self/limits
  echo "== network"; $B ip -o addr; $B ip -o link | $B sed 's/ qlen [0-9]*//'; $B cat /proc/net/if_inet6
  echo "== writable"
  ( exec 3<>/dev/ptmx && echo "ptmx opens" )
  echo x > /dev/shm/x && echo "shm writable"
  echo x > /tmp/x && echo "tmp writable"
  echo x > /build/x && echo "build writable"
  echo x > /etc/x || echo "etc read-only"
  echo x 2>/dev/null > @bb@/x || echo "input not writable"
} > $out/identity 2>&1
echo $out > $out/self
$B ln -s $out/identity $out/link
$B ln -s ../self $out/sub/rel
printf '#!/bin/sh\\necho hi\\n' > $out/sub/script
$B chmod +x $out/sub/script
echo "built"
`

/** Nix's seccomp filter and the no-setuid rules, as the builder experiences them. */
const seccompScript = `
B=@bb@/bin/busybox
$B mkdir $out
cd $out
{
  $B grep -E '^(NoNewPrivs|Seccomp)' /proc/self/status
  $B touch f
  for mode in 4755 2755 6755 1755 0755 4000 2000; do
    if $B chmod $mode f; then echo "chmod $mode: ok"; else echo "chmod $mode: refused"; fi
    $B stat -c '%a' f
  done
  $B mkdir d
  if $B chmod 2755 d; then echo "chmod dir g+s: ok"; else echo "chmod dir g+s: refused"; fi
  if $B install -m 4755 f g; then echo "install 4755: ok"; else echo "install 4755: refused"; fi
  $B stat -c '%a' g
} > $out/seccomp 2>&1
true
`

describe("runInSandbox against nix-build --option sandbox true", () => {
  it("det2: identity of the sandbox (env, ids, tty, files, mounts, caps, network…) gives the same NAR", async () => {
    const file = writeDerivation("det2", `foo = "bar"; multi = "line1\\nline2"; "with space" = "x"; empty = ""; unicode = "é😀";`, identityScript)
    // Nix takes the first build user it can lock exclusively; other tests' builds may hold nixbld1
    // (shared), so Nix may have built as nixbld2…: build as the same host user (seen in uid_map).
    const sameUser = (nixOutput: string) => {
      const hostUid = Number(/^\s*1000\s+(\d+)\s+1$/m.exec(readFileSync(join(nixOutput, "identity"), "utf8"))![1])
      const user = buildUsers.find((u) => u.uid === hostUid)!
      return { buildUser: user }
    }
    const theirs = await expectSameOutput(file, sameUser)
    // What Nix's own output says about its sandbox, which ours reproduced:
    expect(theirs["/fds"]).toContain("fd 2: tty") // the log is a pseudo-terminal
    expect(theirs["/identity"]).toContain("argv0=sh pid=1 ppid=0")
    expect(theirs["/identity"]).toContain("CapBnd:\t000001ffffffffff")
    expect(theirs["/identity"]).toContain("Seccomp:\t2")
    expect(theirs["/identity"]).toContain("/dev/pts devpts")
  })

  it("det3: seccomp (setuid/setgid chmod refused) gives the same NAR", async () => {
    const file = writeDerivation("det3", "", seccompScript)
    const theirs = await expectSameOutput(file)
    expect(theirs["/seccomp"]).toContain("chmod 4755: refused")
  })

  it("passAsFile, and variables a derivation may or may not override: same files and environment", async () => {
    const file = writeDerivation("paf", `passAsFile = [ "big" "other" ]; big = "hello\\nworld"; other = "x"; kept = "y";
      PATH = "/custom"; HOME = "/h"; NIX_BUILD_CORES = "7"; TMPDIR = "/t"; PWD = "/p"; NIX_LOG_FD = "9"; TERM = "dumb";`, `
B=@bb@/bin/busybox
$B mkdir $out
$B tr '\\0' '\\n' < /proc/1/environ > $out/environ
$B ls -a /build > $out/ls
$B stat -c '%n %a %u %g' /build/.attr-* >> $out/ls
$B cat $bigPath > $out/big
$B cat $otherPath > $out/other
`)
    const theirs = await expectSameOutput(file)
    expect(theirs["/environ"]).toContain("bigPath=/build/.attr-1lak0mvllw8rv9i9ygkglvhqsq19qi9ynl4bi7gbf69ab5nzw89a")
  })

  it("non-directory inputs (builtins.toFile) appear in the store like in Nix", async () => {
    const file = writeDerivation("files", `note = builtins.toFile "note" "a note\\n";`, `
B=@bb@/bin/busybox
$B mkdir $out
$B ls -a /nix/store > $out/ls
$B stat -c '%a %u %g %h %F' $note >> $out/ls
$B cat $note > $out/note
`)
    const theirs = await expectSameOutput(file)
    expect(theirs["/note"]).toBe("a note\n")
  })

  it("structured attrs: .attrs.json/.attrs.sh in /build and NIX_ATTRS_*_FILE match", async () => {
    const file = writeDerivation("sattrs", `__structuredAttrs = true; list = [ 1 "two" ]; attrs = { a = "b"; };`, `
B=@bb@/bin/busybox
O=$($B sed -n 's/.*"out":"\\([^"]*\\)".*/\\1/p' /build/.attrs.json)
$B mkdir $O
$B tr '\\0' '\\n' < /proc/1/environ > $O/environ
$B ls -a /build > $O/ls
$B stat -c '%n %a %u %g' /build/.attrs.json /build/.attrs.sh >> $O/ls
$B cp /build/.attrs.json /build/.attrs.sh $O/
`)
    // The attribute files' contents are computed from the derivation by the caller (not by the
    // sandbox); take them from Nix's own build so that the test checks placement, modes and env.
    const theirs = await expectSameOutput(file, (nixOutput) => ({
      structuredAttrs: {
        json: readFileSync(join(nixOutput, ".attrs.json"), "utf8"),
        sh: readFileSync(join(nixOutput, ".attrs.sh"), "utf8")
      }
    }))
    expect(theirs["/environ"]).toContain("NIX_ATTRS_JSON_FILE=/tmp/nix-build-sattrs.drv-0/.attrs.json")
  })

  it("fixed-output derivation: host network namespace, /etc files, NIX_OUTPUT_CHECKED, impureEnvVars (build logs match)", async () => {
    const content = "fixed output\n"
    const hash = createHash("sha256").update(content).digest("hex")
    const file = writeDerivation("fod", `outputHashAlgo = "sha256"; outputHashMode = "flat"; outputHash = "${hash}";
      impureEnvVars = [ "B3_TEST_IMPURE" "B3_TEST_UNSET" ];`, `
B=@bb@/bin/busybox
echo "=== begin"
$B tr '\\0' '\\n' < /proc/1/environ
$B ls -a /etc
$B cat /etc/nsswitch.conf /etc/passwd /etc/group
$B cat /etc/hosts
$B ip -o link | $B cut -d: -f2 | $B sort
$B hostname; $B id
$B grep -E '^(NoNewPrivs|Seccomp|Cap)' /proc/self/status
echo "=== end"
printf 'fixed output\\n' > $out
`)
    const between = (log: string) => log.slice(log.indexOf("=== begin"), log.indexOf("=== end"))
    // nix-build's logger expands tabs (to the next multiple of 8 columns); do the same to ours.
    const expandTabs = (log: string) => log.split("\n").map((line) => {
      let out = ""
      for (const ch of line) out += ch === "\t" ? " ".repeat(8 - (out.length % 8)) : ch
      return out
    }).join("\n")
    const nixLog = nixBuild(file, { B3_TEST_IMPURE: "impure value" })
    const drv = showDerivation(file)
    const ourLog = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      let log = ""
      const decoder = new TextDecoder()
      const result = yield* runInSandbox(specOf(drv, {
        hostEnv: { B3_TEST_IMPURE: "impure value" },
        onLog: (chunk) => { log += decoder.decode(chunk, { stream: true }) }
      }))
      expect(readFileSync(result.outputs[drv.outputs["out"]!.path]!, "utf8")).toBe(content)
      return log
    })))
    expect(expandTabs(between(ourLog))).toEqual(between(nixLog))
    expect(between(nixLog)).toContain("NIX_OUTPUT_CHECKED=1")
    expect(between(nixLog)).toContain("B3_TEST_IMPURE=impure value")
  })
})
