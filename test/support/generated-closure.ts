/**
 * A generated closure of text paths shaped like a real one, for the web view's tests and benchmark:
 * node 0 is the root; every node refers to up to four "children" (a tree, so everything is reached),
 * plus a few random deeper nodes, mostly among the last 20 ("hubs", the glibc of the closure, which
 * are also the biggest). Each path's text names the paths it refers to, so a scan of the referrer
 * finds the reference. A second version changes some nodes (and so, through the references in their
 * texts, every path above them), drops one and adds one.
 */
import { Effect } from "effect"
import * as StorePath from "../../src/core/store-path.ts"
import type { StoreWriteApi } from "../../src/services/store-write.ts"

export interface PlannedNode {
  readonly name: string
  readonly refs: ReadonlyArray<number>
  readonly size: number
}

const stems = ["glibc", "zlib", "openssl", "bash", "coreutils", "python3", "perl", "ncurses", "readline", "libffi", "gcc-lib",
  "icu", "sqlite", "curl", "expat", "libxml2", "pcre2", "xz", "bzip2", "zstd", "gmp", "mpfr", "gettext", "attr", "acl",
  "util-linux", "systemd-lib", "dbus", "glib", "harfbuzz", "freetype", "fontconfig", "cairo", "pango", "gtk3", "libpng"]

/** A deterministic plan of `n` nodes (same seed, same plan). */
export const planClosure = (n: number, seed = 42): Array<PlannedNode> => {
  let s = seed
  const random = () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return (s >>> 8) / 0x1000000 }
  const hubs = Math.min(20, Math.floor(n / 4))
  const nodes: Array<PlannedNode> = []
  for (let i = 0; i < n; i++) {
    const refs = new Set<number>()
    for (let c = 4 * i + 1; c <= 4 * i + 4 && c < n; c++) refs.add(c)
    const extra = i >= n - 1 ? 0 : Math.floor(random() * 4)
    for (let k = 0; k < extra; k++) refs.add(i + 1 + Math.floor((1 - random() ** 3) * (n - i - 1)))
    const isHub = i >= n - hubs
    const size = Math.round(isHub ? 200_000 + random() * 800_000 : Math.exp(Math.log(200) + random() * Math.log(150)))
    nodes.push({ name: `${stems[i % stems.length]}-${Math.floor(i / stems.length)}.${i % 10}`, refs: [...refs].filter((r) => r < n), size })
  }
  return nodes
}

export interface Variant {
  /** Nodes whose text changes. */
  readonly change?: ReadonlyArray<number>
  /** A node no longer referred to (nor added). */
  readonly drop?: number
  /** A new node, referred to by this node. */
  readonly addUnder?: number
}

/** The text of a node (its size is about the planned size). */
const textOf = (node: PlannedNode, refs: ReadonlyArray<string>, changed: boolean) => {
  const head = `${node.name}${changed ? " (version 2)" : ""}\nuses:\n${refs.map((r) => `  ${r}\n`).join("")}`
  const fill = Math.max(0, node.size - head.length)
  return head + `${"=".repeat(63)}\n`.repeat(Math.floor(fill / 64)) + "=".repeat(fill % 64)
}

/** Adds the plan's paths to a store, deepest first; gives the printed paths (index 0: the root). */
export const writeClosure = (write: StoreWriteApi, storeDir: string, plan: ReadonlyArray<PlannedNode>, variant: Variant = {}) =>
  Effect.gen(function*() {
    const paths: Array<string | undefined> = new Array(plan.length)
    const extraPath = variant.addUnder === undefined ? undefined : StorePath.print((yield* write.addText("newlib-1.0", textOf({ name: "newlib-1.0", refs: [], size: 5000 }, [], false), [])).path, storeDir)
    const reachable = new Uint8Array(plan.length)
    reachable[0] = 1
    for (let i = 0; i < plan.length; i++) {
      if (!reachable[i]) continue
      for (const r of plan[i]!.refs) if (r !== variant.drop) reachable[r] = 1
    }
    // By height (longest chain down to a leaf): the paths of one height are added together.
    const height = new Int32Array(plan.length)
    for (let i = plan.length - 1; i >= 0; i--) for (const r of plan[i]!.refs) height[i] = Math.max(height[i]!, height[r]! + 1)
    const levels: Array<Array<number>> = []
    for (let i = 0; i < plan.length; i++) if (reachable[i]) (levels[height[i]!] ??= []).push(i)
    for (const level of levels) {
      yield* Effect.forEach(level ?? [], (i) => Effect.gen(function*() {
        const node = plan[i]!
        const refs = node.refs.filter((r) => r !== variant.drop && reachable[r]).map((r) => paths[r]!)
        if (i === variant.addUnder && extraPath) refs.push(extraPath)
        const refPaths = yield* Effect.forEach(refs, (r) => Effect.fromResult(StorePath.parse(r, storeDir)))
        const added = yield* write.addText(node.name, textOf(node, refs, variant.change?.includes(i) ?? false), refPaths)
        paths[i] = StorePath.print(added.path, storeDir)
      }), { concurrency: 32, discard: true })
    }
    return paths
  })
