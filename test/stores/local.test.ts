import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as LocalStore from "../../src/layers/local/index.ts"
import { removeTree } from "../../src/layers/local/fs-ops.ts"
import { storeConformance } from "./conformance.ts"

const scratchRoot = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-local-"))),
  (dir) => Effect.sync(() => { removeTree(dir); rmSync(dir, { recursive: true, force: true }) })
)

storeConformance("local (chroot store)", () => Effect.flatMap(scratchRoot, (root) => LocalStore.make({ root })), { checksReferences: true })
storeConformance("local (non-default store dir)", () => Effect.flatMap(scratchRoot, (root) => LocalStore.make({ root, storeDir: "/b3/store" })), { checksReferences: true })
