/**
 * bench/build: per-derivation overhead of `b3 build` vs `nix-store --realise` (Nix 2.8, sandbox on),
 * on trivial derivations (`echo … > $out`), in the same run and from the same `.drv` files:
 * (a) N independent derivations, (b) a chain of N, each depending on the previous one; one job at
 * a time and then two. Each run starts from a fresh chroot store holding busybox and the `.drv`s.
 *   npm run bench:build [-- --quick]
 */
import { spawnSync } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { measure, printTable, runOrThrow, type Row } from "../support/measure.ts"

const quick = process.argv.includes("--quick")
const count = quick ? 20 : 100
const b3 = fileURLToPath(new URL("../../bin/b3", import.meta.url))
const work = mkdtempSync(join(tmpdir(), "b3-bench-build-"))

const run = runOrThrow

try {
  const bbDir = join(work, "bb")
  mkdirSync(join(bbDir, "bin"), { recursive: true })
  copyFileSync("/bin/busybox", join(bbDir, "bin/busybox"))
  symlinkSync("busybox", join(bbDir, "bin/sh"))
  const nonce = Date.now().toString(36)
  const template = join(work, "template")
  const bb = run("nix-store", ["--store", template, "--add-fixed", "--recursive", "sha256", bbDir])
  writeFileSync(join(work, "graph.nix"), `
let
  bb = builtins.storePath ${bb};
  mk = name: script: derivation { inherit name; system = "x86_64-linux"; builder = "\${bb}/bin/sh"; args = [ "-c" script ]; };
  chain = builtins.foldl' (prev: i: mk "chain-${nonce}-\${toString i}" "echo \${toString i} \${prev} > $out") (mk "chain-${nonce}-start" "echo start > $out") (builtins.genList (i: i) ${count - 1});
in {
  independent = builtins.genList (i: mk "independent-${nonce}-\${toString i}" "echo \${toString i} > $out") ${count};
  inherit chain;
}`)
  const drvs = (attr: string) => run("nix-instantiate", ["--store", template, join(work, "graph.nix"), "-A", attr]).split("\n")
  const cases = [
    { name: "independent", drvs: drvs("independent"), count },
    { name: "chain", drvs: drvs("chain"), count }
  ]
  // Fresh stores for each run: a copy of the template (busybox + .drv files, no outputs).
  const reset = `chmod -R u+w ${work}/b3-root ${work}/nix-root 2>/dev/null; rm -rf ${work}/b3-root ${work}/nix-root; ` +
    `cp -a ${template} ${work}/b3-root && cp -a ${template} ${work}/nix-root`
  const rows: Array<Row> = []
  for (const jobs of [1, 2]) {
    for (const c of cases) {
      const list = join(work, `${c.name}.drvs`)
      writeFileSync(list, c.drvs.join("\n"))
      rows.push({
        case: `${c.count} ${c.name} trivial derivations, --max-jobs ${jobs}`,
        b3: measure(`${b3} build --store 'local?root=${work}/b3-root' --max-jobs ${jobs} $(cat ${list}) > /dev/null`, { before: reset, runs: 2 }),
        nix: measure(`nix-store --store ${work}/nix-root --realise --option sandbox true --option substituters '' --max-jobs ${jobs} $(cat ${list}) > /dev/null 2>&1`,
          { before: reset, runs: 2 })
      })
    }
  }
  printTable("bench/build: realising trivial derivations (whole command; per derivation = time / count)", rows)
  for (const r of rows) {
    const n = Number(r.case.split(" ")[0])
    console.log(`${r.case}: b3 ${(1000 * r.b3.seconds / n).toFixed(0)} ms/drv, Nix ${(1000 * r.nix.seconds / n).toFixed(0)} ms/drv`)
  }
} finally {
  spawnSync("chmod", ["-R", "u+w", work])
  rmSync(work, { recursive: true, force: true })
}
