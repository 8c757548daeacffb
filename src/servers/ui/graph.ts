/**
 * The closure of a path as a graph the web view draws, and the questions asked of it: added size
 * (the dominator tree), shortest reference chains (why-depends) and closure diffs. Pure: paths are
 * given as base names (`<hash>-<name>`) with their NAR sizes and references.
 */

export interface Node {
  /** `<hash>-<name>` */
  readonly baseName: string
  readonly narSize: number
  /** Base names of the paths it refers to (a self-reference is ignored). */
  readonly references: ReadonlyArray<string>
}

/** A closure, indexed breadth first from its root (index 0). */
export interface ClosureGraph {
  readonly nodes: ReadonlyArray<Node>
  /** References as indices (no self-references), in the order of `nodes[i].references`. */
  readonly refs: ReadonlyArray<ReadonlyArray<number>>
  /** Immediate dominator of each node (-1 for the root): the last path every chain from the root to it passes through. */
  readonly idom: Int32Array
  /** What removing the node from the closure would save: the NAR sizes of the nodes it dominates, its own included. */
  readonly added: Float64Array
  /** Parent in the breadth-first tree (-1 for the root) and distance from the root. */
  readonly parent: Int32Array
  readonly depth: Int32Array
  readonly closureSize: number
  readonly index: ReadonlyMap<string, number>
}

/**
 * Indexes a closure breadth first from `root`; references to paths not among `nodes` are left out
 * (a closure computed by the store has none).
 */
export const closureGraph = (root: string, nodes: ReadonlyMap<string, Node>): ClosureGraph => {
  const order: Array<Node> = []
  const index = new Map<string, number>()
  const parent: Array<number> = []
  const depth: Array<number> = []
  const first = nodes.get(root)
  if (first !== undefined) {
    index.set(root, 0)
    order.push(first)
    parent.push(-1)
    depth.push(0)
  }
  for (let i = 0; i < order.length; i++) {
    for (const ref of order[i]!.references) {
      const node = nodes.get(ref)
      if (node === undefined || index.has(ref)) continue
      index.set(ref, order.length)
      order.push(node)
      parent.push(i)
      depth.push(depth[i]! + 1)
    }
  }
  const refs = order.map((node, i) => {
    const out: Array<number> = []
    for (const ref of node.references) {
      const j = index.get(ref)
      if (j !== undefined && j !== i && !out.includes(j)) out.push(j)
    }
    return out
  })
  const idom = dominators(refs)
  const added = new Float64Array(order.length)
  for (let i = 0; i < order.length; i++) added[i] = order[i]!.narSize
  // Children come after their dominators in postorder's reverse, so summing over the reverse of a
  // reverse postorder folds every subtree into its root.
  const rpo = reversePostorder(refs)
  for (let k = rpo.length - 1; k > 0; k--) {
    const v = rpo[k]!
    if (idom[v]! >= 0) added[idom[v]!]! += added[v]!
  }
  return {
    nodes: order,
    refs,
    idom,
    added,
    parent: Int32Array.from(parent),
    depth: Int32Array.from(depth),
    closureSize: order.reduce((sum, n) => sum + n.narSize, 0),
    index
  }
}

/** Nodes reachable from node 0, in reverse postorder of a depth-first search (iterative). */
const reversePostorder = (refs: ReadonlyArray<ReadonlyArray<number>>): Array<number> => {
  if (refs.length === 0) return []
  const post: Array<number> = []
  const seen = new Uint8Array(refs.length)
  const stack: Array<number> = [0]
  const next: Array<number> = [0]
  seen[0] = 1
  while (stack.length > 0) {
    const top = stack.length - 1
    const v = stack[top]!
    const k = next[top]!
    if (k < refs[v]!.length) {
      next[top] = k + 1
      const w = refs[v]![k]!
      if (!seen[w]) { seen[w] = 1; stack.push(w); next.push(0) }
    } else {
      stack.pop()
      next.pop()
      post.push(v)
    }
  }
  return post.reverse()
}

/**
 * Immediate dominators from node 0 (Cooper, Harvey and Kennedy's iterative algorithm; one pass
 * settles a DAG, more passes handle cycles, which a valid store has none of).
 */
export const dominators = (refs: ReadonlyArray<ReadonlyArray<number>>): Int32Array => {
  const n = refs.length
  const idom = new Int32Array(n).fill(-1)
  if (n === 0) return idom
  const rpo = reversePostorder(refs)
  const rank = new Int32Array(n).fill(-1)
  rpo.forEach((v, k) => { rank[v] = k })
  const preds: Array<Array<number>> = Array.from({ length: n }, () => [])
  for (let v = 0; v < n; v++) for (const w of refs[v]!) preds[w]!.push(v)
  const intersect = (a: number, b: number) => {
    while (a !== b) {
      while (rank[a]! > rank[b]!) a = idom[a]!
      while (rank[b]! > rank[a]!) b = idom[b]!
    }
    return a
  }
  idom[0] = 0
  for (let changed = true; changed;) {
    changed = false
    for (let k = 1; k < rpo.length; k++) {
      const v = rpo[k]!
      let candidate = -1
      for (const p of preds[v]!) {
        if (idom[p] === -1) continue
        candidate = candidate === -1 ? p : intersect(p, candidate)
      }
      if (candidate !== idom[v]) { idom[v] = candidate; changed = true }
    }
  }
  idom[0] = -1
  return idom
}

/**
 * Why `from` (node 0) depends on `to`: the shortest reference chain (indices, from first to last),
 * how many paths of the closure lead to `to`, and those of them that refer to `to` directly.
 * Undefined when `to` is not in the closure.
 */
export const whyDepends = (graph: ClosureGraph, to: number): { chain: Array<number>; leadingTo: number; directReferrers: Array<number> } | undefined => {
  if (to < 0 || to >= graph.nodes.length) return undefined
  const chain: Array<number> = []
  for (let v = to; v !== -1; v = graph.parent[v]!) chain.push(v)
  chain.reverse()
  // Which nodes reach `to`: a reverse search over the referrers within the closure.
  const referrers: Array<Array<number>> = graph.refs.map(() => [])
  graph.refs.forEach((rs, v) => { for (const w of rs) referrers[w]!.push(v) })
  const reaches = new Uint8Array(graph.nodes.length)
  const queue = [to]
  reaches[to] = 1
  for (let h = 0; h < queue.length; h++) {
    for (const v of referrers[queue[h]!]!) if (!reaches[v]) { reaches[v] = 1; queue.push(v) }
  }
  return { chain, leadingTo: queue.length - 1, directReferrers: referrers[to]!.slice().sort((a, b) => a - b) }
}

export interface DiffEntry { readonly baseName: string; readonly narSize: number }
export interface ChangedEntry { readonly from: DiffEntry; readonly to: DiffEntry; readonly delta: number }
export interface ClosureDiff {
  readonly added: Array<DiffEntry>
  readonly removed: Array<DiffEntry>
  /** Same name, different hash. */
  readonly changed: Array<ChangedEntry>
  readonly unchanged: number
  readonly fromSize: number
  readonly toSize: number
}

const nameOf = (baseName: string) => baseName.slice(33)

/**
 * The difference between two closures: paths only in `to` (added), only in `from` (removed), and
 * paths whose name is in both under different hashes (changed), biggest (change) first. Where a name occurs more than once
 * on a side, paths with the same hash are matched first, then the rest in sorted order; any left
 * over are added or removed.
 */
export const diffClosures = (from: ReadonlyArray<Node>, to: ReadonlyArray<Node>): ClosureDiff => {
  const group = (nodes: ReadonlyArray<Node>) => {
    const byName = new Map<string, Array<Node>>()
    for (const node of nodes) {
      const list = byName.get(nameOf(node.baseName))
      if (list) list.push(node)
      else byName.set(nameOf(node.baseName), [node])
    }
    return byName
  }
  const a = group(from)
  const b = group(to)
  const entry = (n: Node): DiffEntry => ({ baseName: n.baseName, narSize: n.narSize })
  const added: Array<DiffEntry> = []
  const removed: Array<DiffEntry> = []
  const changed: Array<ChangedEntry> = []
  let unchanged = 0
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    const left = a.get(name) ?? []
    const right = b.get(name) ?? []
    const rightNames = new Set(right.map((n) => n.baseName))
    const leftNames = new Set(left.map((n) => n.baseName))
    unchanged += left.filter((n) => rightNames.has(n.baseName)).length
    const l = left.filter((n) => !rightNames.has(n.baseName)).sort((x, y) => x.baseName < y.baseName ? -1 : 1)
    const r = right.filter((n) => !leftNames.has(n.baseName)).sort((x, y) => x.baseName < y.baseName ? -1 : 1)
    const paired = Math.min(l.length, r.length)
    for (let i = 0; i < paired; i++) changed.push({ from: entry(l[i]!), to: entry(r[i]!), delta: r[i]!.narSize - l[i]!.narSize })
    for (const n of l.slice(paired)) removed.push(entry(n))
    for (const n of r.slice(paired)) added.push(entry(n))
  }
  const byName = (x: DiffEntry, y: DiffEntry) => nameOf(x.baseName).localeCompare(nameOf(y.baseName)) || (x.baseName < y.baseName ? -1 : 1)
  // Biggest first: what an update added or saved.
  const bySize = (x: DiffEntry, y: DiffEntry) => y.narSize - x.narSize || byName(x, y)
  return {
    added: added.sort(bySize),
    removed: removed.sort(bySize),
    changed: changed.sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta) || byName(x.to, y.to)),
    unchanged,
    fromSize: from.reduce((s, n) => s + n.narSize, 0),
    toSize: to.reduce((s, n) => s + n.narSize, 0)
  }
}
