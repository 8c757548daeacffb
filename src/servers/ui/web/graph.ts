/**
 * A closure's dependency graph, usable for thousands of paths: paths are laid out in layers by
 * their distance from the root (d3-hierarchy's tidy tree over the breadth-first tree), collapsed
 * until opened, with at most `pageSize` children shown per path; the selected path's references and
 * referrers among the shown paths are drawn as extra edges and listed; search reveals any path.
 * Drawn on a canvas with d3-zoom for panning and zooming.
 */
import { hierarchy, tree, type HierarchyPointNode } from "d3-hierarchy"
import { select } from "d3-selection"
import { zoom, zoomIdentity, type ZoomTransform } from "d3-zoom"
import { findInClosure, type Closure } from "./closure.ts"
import { formatSize, h, link } from "./dom.ts"

const pageSize = 25
const rowHeight = 22
const columnWidth = 250
const boxWidth = 200

/** A shown path, or the stub that stands for a path's further children. */
interface Datum {
  readonly i: number
  readonly more?: number
}

type Point = HierarchyPointNode<Datum>

export const graphView = (c: Closure, initialFocus: number | undefined) => {
  /** Open paths: the root and its references at first. */
  const expanded = new Set<number>([0, ...c.bfsChildren[0]!.slice(0, pageSize)])
  /** How many children each expanded path shows. */
  const shown = new Map<number, number>()
  /** Paths revealed by search or selection: always shown under their (expanded) parents. */
  const pinned = new Set<number>()
  let selected = 0
  let transform: ZoomTransform = zoomIdentity
  let points: Array<Point> = []
  let byIndex = new Map<number, Point>()

  const canvas = h("canvas", { class: "chart graph", id: "graph-canvas" })
  const panel = h("div", { class: "graph-panel", id: "graph-panel" })
  const searchInput = h("input", { type: "search", placeholder: "find in this closure…", id: "graph-search" })
  const matches = h("ul", { class: "matches" })

  const childrenOf = (d: Datum): Array<Datum> | undefined => {
    if (d.more !== undefined || !expanded.has(d.i)) return undefined
    const all = c.bfsChildren[d.i]!
    if (all.length === 0) return undefined
    const limit = shown.get(d.i) ?? pageSize
    const visible = all.slice(0, limit)
    for (const p of all.slice(limit)) if (pinned.has(p)) visible.push(p)
    const out: Array<Datum> = visible.map((i) => ({ i }))
    if (all.length > limit) out.push({ i: d.i, more: all.length - visible.length })
    return out
  }

  const layout = () => {
    const root = tree<Datum>().nodeSize([rowHeight, columnWidth])(hierarchy<Datum>({ i: 0 }, childrenOf))
    points = root.descendants()
    byIndex = new Map(points.filter((p) => p.data.more === undefined).map((p) => [p.data.i, p]))
  }

  const size = () => {
    const width = Math.max(300, canvas.parentElement?.clientWidth ?? 800)
    const height = Math.max(300, Math.min(760, window.innerHeight - 220))
    const ratio = window.devicePixelRatio || 1
    if (canvas.width !== width * ratio || canvas.height !== height * ratio) {
      canvas.width = width * ratio
      canvas.height = height * ratio
      canvas.style.width = `${width}px`
      canvas.style.height = `${height}px`
    }
    return { width, height, ratio }
  }

  /** Screen position of a laid-out point: depth goes right, siblings go down. */
  const at = (p: Point) => ({ x: p.y, y: p.x })

  const render = () => {
    const { width, height, ratio } = size()
    const ctx = canvas.getContext("2d")!
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0)
    ctx.clearRect(0, 0, width, height)
    ctx.save()
    ctx.translate(transform.x, transform.y)
    ctx.scale(transform.k, transform.k)
    const curve = (a: { x: number; y: number }, b: { x: number; y: number }) => {
      ctx.moveTo(a.x + boxWidth, a.y)
      const mid = (a.x + boxWidth + b.x) / 2
      ctx.bezierCurveTo(mid, a.y, mid, b.y, b.x, b.y)
    }
    ctx.strokeStyle = "#99a"
    ctx.lineWidth = 1
    ctx.beginPath()
    for (const p of points) if (p.parent) curve(at(p.parent), at(p))
    ctx.stroke()
    // The selected path's references and referrers among those shown.
    const sel = byIndex.get(selected)
    if (sel) {
      ctx.lineWidth = 1.5
      ctx.strokeStyle = "#2a7"
      ctx.beginPath()
      for (const r of c.refs[selected]!) { const q = byIndex.get(r); if (q && q.parent !== sel) curve(at(sel), at(q)) }
      ctx.stroke()
      ctx.strokeStyle = "#d70"
      ctx.beginPath()
      for (const r of c.referrers[selected]!) { const q = byIndex.get(r); if (q && sel.parent !== q) curve(at(q), at(sel)) }
      ctx.stroke()
    }
    ctx.font = "12px system-ui, sans-serif"
    ctx.textBaseline = "middle"
    for (const p of points) {
      const { x, y } = at(p)
      const i = p.data.i
      const more = p.data.more
      const isSel = more === undefined && i === selected
      const related = more === undefined && sel !== undefined && (c.refs[selected]!.includes(i) || c.referrers[selected]!.includes(i))
      ctx.fillStyle = more !== undefined ? "#eee" : isSel ? "#ffd866" : related ? "#dff3e8" : expanded.has(i) || c.bfsChildren[i]!.length === 0 ? "#fff" : "#e8ecff"
      ctx.strokeStyle = isSel ? "#a80" : "#778"
      ctx.beginPath()
      ctx.rect(x, y - 9, boxWidth, 18)
      ctx.fill()
      ctx.stroke()
      ctx.fillStyle = "#111"
      const kids = c.bfsChildren[i]!.length
      const text = more !== undefined ? `+${more} more…`
        : `${c.names[i]}  ${formatSize(c.added[i]!)}${kids > 0 && !expanded.has(i) ? `  ▸${kids}` : ""}`
      ctx.save()
      ctx.beginPath()
      ctx.rect(x, y - 9, boxWidth - 2, 18)
      ctx.clip()
      ctx.fillText(text, x + 4, y)
      ctx.restore()
    }
    ctx.restore()
    // Layer headings, fixed at the top.
    ctx.fillStyle = "rgba(255, 255, 255, 0.9)"
    ctx.fillRect(0, 0, width, 20)
    ctx.fillStyle = "#556"
    ctx.font = "11px system-ui, sans-serif"
    const layers = new Map<number, number>()
    for (let k = 0; k < c.depth.length; k++) layers.set(c.depth[k]!, (layers.get(c.depth[k]!) ?? 0) + 1)
    for (const [depth, count] of layers) {
      const x = transform.x + depth * columnWidth * transform.k
      if (x > -columnWidth && x < width) ctx.fillText(`layer ${depth} · ${count} paths`, x + 4, 10)
    }
    canvas.dataset["shown"] = String(byIndex.size)
    canvas.dataset["selected"] = c.paths[selected]
  }

  const hit = (sx: number, sy: number): Point | undefined => {
    const [x, y] = transform.invert([sx, sy])
    return points.find((p) => { const q = at(p); return x >= q.x && x <= q.x + boxWidth && y >= q.y - 9 && y <= q.y + 9 })
  }

  const zoomer = zoom<HTMLCanvasElement, unknown>().scaleExtent([0.05, 4]).on("zoom", (event: { transform: ZoomTransform }) => {
    transform = event.transform
    render()
  })

  const centre = (i: number) => {
    const p = byIndex.get(i)
    if (!p) return
    const { width, height } = size()
    const q = at(p)
    const k = Math.max(transform.k, 0.6)
    select(canvas).call(zoomer.transform, zoomIdentity.translate(width / 3 - q.x * k, height / 2 - q.y * k).scale(k))
  }

  const list = (title: string, items: ReadonlyArray<number>) => h("div", {},
    h("h4", {}, `${title} (${items.length})`),
    h("ul", { class: "compact" }, ...items.slice(0, 200).map((r) =>
      h("li", {}, h("a", { href: "javascript:void 0", onclick: () => reveal(r) }, c.names[r]!), " ", h("span", { class: "dim" }, formatSize(c.narSize[r]!))))),
    items.length > 200 ? h("div", { class: "dim" }, `… and ${items.length - 200} more`) : null)

  const showPanel = () => {
    const i = selected
    panel.replaceChildren(
      h("div", { class: "info-name" }, c.names[i]!),
      h("div", { class: "dim" }, c.paths[i]!.slice(0, 32)),
      h("div", {}, `layer ${c.depth[i]} · NAR ${formatSize(c.narSize[i]!)} · added ${formatSize(c.added[i]!)}`),
      h("div", {}, link(`/path/${c.paths[i]}`, "path"), " · ", link(`/why/${c.paths[0]}/${c.paths[i]}`, "why-depends"), " · ", link(`/sizes/${c.paths[i]}`, "sizes")),
      list("references", c.refs[i]!), list("referrers in this closure", c.referrers[i]!))
  }

  /** Shows a path: opens the paths above it in the breadth-first tree, selects and centres it. */
  const reveal = (i: number) => {
    for (let p = c.parent[i]!; p >= 0; p = c.parent[p]!) expanded.add(p)
    pinned.add(i)
    selected = i
    layout()
    showPanel()
    centre(i)
    render()
  }

  const toggle = (p: Point) => {
    if (p.data.more !== undefined) {
      shown.set(p.data.i, (shown.get(p.data.i) ?? pageSize) + 4 * pageSize)
    } else {
      selected = p.data.i
      if (expanded.has(p.data.i)) { if (p.data.i !== 0) expanded.delete(p.data.i) } else expanded.add(p.data.i)
      showPanel()
    }
    layout()
    render()
  }

  canvas.addEventListener("click", (event) => {
    const p = hit(event.offsetX, event.offsetY)
    if (p) toggle(p)
  })
  searchInput.addEventListener("input", () => {
    matches.replaceChildren(...findInClosure(c, searchInput.value, 12).map((i) =>
      h("li", {}, h("a", { href: "javascript:void 0", onclick: () => reveal(i) }, c.names[i]!), " ", h("span", { class: "dim" }, `layer ${c.depth[i]}`))))
  })

  layout()
  showPanel()
  const element = h("div", { class: "graph-view" },
    h("div", { class: "graph-tools" }, searchInput, matches,
      h("p", { class: "dim" }, `${c.paths.length} paths in ${new Set(c.depth).size} layers. Click a path to open or close it; green edges go to its references, orange ones come from its referrers.`)),
    h("div", { class: "graph-main" }, h("div", { class: "chart-box" }, canvas), panel))
  queueMicrotask(() => {
    select(canvas).call(zoomer).on("dblclick.zoom", null)
    const { height } = size()
    select(canvas).call(zoomer.transform, zoomIdentity.translate(20, height / 2))
    if (initialFocus !== undefined && initialFocus > 0) reveal(initialFocus)
    let width = canvas.parentElement?.clientWidth ?? 0
    new ResizeObserver(() => {
      const now = canvas.parentElement?.clientWidth ?? 0
      if (canvas.isConnected && now !== width) { width = now; render() }
    }).observe(canvas.parentElement!)
  })
  return { element }
}
