/** A closure as `api/closure` sends it, with the referrers and dominator-tree children worked out here, fetched once per root. */
import { api } from "./dom.ts"

export interface ClosureJson {
  readonly root: string
  readonly storeDir: string
  readonly closureSize: number
  readonly paths: ReadonlyArray<string>
  readonly narSize: ReadonlyArray<number>
  readonly refs: ReadonlyArray<ReadonlyArray<number>>
  readonly idom: ReadonlyArray<number>
  readonly added: ReadonlyArray<number>
  readonly parent: ReadonlyArray<number>
  readonly depth: ReadonlyArray<number>
}

export interface Closure extends ClosureJson {
  readonly referrers: ReadonlyArray<ReadonlyArray<number>>
  /** Children in the dominator tree, biggest added size first. */
  readonly domChildren: ReadonlyArray<ReadonlyArray<number>>
  /** Children in the breadth-first tree, biggest added size first. */
  readonly bfsChildren: ReadonlyArray<ReadonlyArray<number>>
  readonly names: ReadonlyArray<string>
  readonly indexOf: ReadonlyMap<string, number>
}

const cache = new Map<string, Promise<Closure>>()

export const loadClosure = (baseName: string): Promise<Closure> => {
  let hit = cache.get(baseName)
  if (hit === undefined) {
    hit = api<ClosureJson>("closure", { path: baseName }).then((json) => {
      performance.mark("b3-closure-parsed")
      const indexed = index(json)
      performance.mark("b3-closure-indexed")
      return indexed
    })
    hit.catch(() => cache.delete(baseName))
    cache.set(baseName, hit)
    if (cache.size > 4) cache.delete(cache.keys().next().value!)
  }
  return hit
}

const index = (c: ClosureJson): Closure => {
  const n = c.paths.length
  const referrers: Array<Array<number>> = Array.from({ length: n }, () => [])
  const domChildren: Array<Array<number>> = Array.from({ length: n }, () => [])
  const bfsChildren: Array<Array<number>> = Array.from({ length: n }, () => [])
  for (let i = 0; i < n; i++) {
    for (const r of c.refs[i]!) referrers[r]!.push(i)
    if (c.idom[i]! >= 0) domChildren[c.idom[i]!]!.push(i)
    if (c.parent[i]! >= 0) bfsChildren[c.parent[i]!]!.push(i)
  }
  const byAdded = (a: number, b: number) => c.added[b]! - c.added[a]!
  for (const list of domChildren) list.sort(byAdded)
  for (const list of bfsChildren) list.sort(byAdded)
  return {
    ...c,
    referrers,
    domChildren,
    bfsChildren,
    names: c.paths.map((p) => p.slice(33)),
    indexOf: new Map(c.paths.map((p, i) => [p, i]))
  }
}

/** Indices of the paths whose name (or hash part) contains `text`, best first: exact names, then by added size. */
export const findInClosure = (c: Closure, text: string, limit = 20): Array<number> => {
  const t = text.trim().toLowerCase()
  if (t === "") return []
  const found: Array<number> = []
  for (let i = 0; i < c.paths.length; i++) if (c.paths[i]!.toLowerCase().includes(t)) found.push(i)
  const exact = (i: number) => (c.names[i]!.toLowerCase() === t ? 0 : 1)
  return found.sort((a, b) => exact(a) - exact(b) || c.added[b]! - c.added[a]!).slice(0, limit)
}
