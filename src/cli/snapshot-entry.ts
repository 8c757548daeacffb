/**
 * The entry of the CLI's V8 startup snapshot. scripts/bundle.ts bundles it with the whole CLI into
 * dist/b3-snapshot.cjs and builds dist/b3.blob from that with `node --build-snapshot`, which evaluates
 * every module of the CLI (Effect included) once; bin/b3 then runs `node --snapshot-blob dist/b3.blob --
 * ARGS…`, which starts from that heap instead of compiling and evaluating the modules again.
 *
 * So nothing a run depends on may be read while modules are evaluated: argv, env (HOME, XDG_*, B3_*),
 * cwd, the terminal, the pid, the time, random state. main.ts reads argv when `main()` is called and
 * config.ts reads the configuration on first use; test/cli/snapshot.test.ts checks that a run sees its
 * own. (V8 reseeds Math.random in every process started from a snapshot.) Modules that backends load on
 * first use (`import("./local/opener.ts")` and the like) are in the bundle but evaluated only when a run
 * needs them; the IPFS packages, undici and ws are loaded from node_modules then (snapshot-runtime.ts).
 */
import { restoreIntl } from "./snapshot-prelude.ts" // first: it makes Effect's CLI modules snapshot-safe
import { dirname, join } from "node:path"
import { pathToFileURL } from "node:url"
import { startupSnapshot } from "node:v8"
import { setImporter } from "../io/import-module.ts"
import { main } from "./main.ts"
import { setSnapshotUrl } from "./snapshot-runtime.ts"
import { runTimeImporter, snapshotBlob } from "./snapshot-support.ts"
import { warmUpDaemon } from "./snapshot-warmup.ts"

restoreIntl()

startupSnapshot.setDeserializeMainFunction(() => {
  const bundle = join(dirname(snapshotBlob("dist/b3.blob")), "b3-snapshot.cjs")
  setSnapshotUrl(pathToFileURL(bundle).href)
  setImporter(runTimeImporter(bundle))
  // A snapshot's process.argv is [node, ARGS…]: give it the [node, script, ARGS…] that main() and Node programs expect.
  process.argv.splice(1, 0, bundle)
  main()
})

// While the snapshot is built only: a daemon session in this process, so that the code a fresh
// `b3 daemon`'s first client runs is compiled in the snapshot (snapshot-warmup.ts). The snapshot is
// taken once it has ended (Node runs the event loop until nothing is left).
void warmUpDaemon()
