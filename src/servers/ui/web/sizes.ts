/**
 * A closure's sizes as a treemap or a sunburst (d3-hierarchy lays them out; they are drawn on a
 * canvas, so 20,000 paths stay quick). Two hierarchies: by added size, the dominator tree (a path's
 * box holds the paths that are in the closure only because of it, so its area is what removing it
 * would save), and by NAR size, every path once, side by side. Both total the closure's size.
 * Only what can be seen is laid out: the dominator tree a few levels below the box zoomed into,
 * opened only where a box is big enough to show what is in it (a closed box stands for everything
 * its path dominates; a path's small children are one box together), and by NAR size the biggest
 * paths, the rest in one box.
 */
import { hierarchy, partition, treemap, treemapSquarify, type HierarchyNode, type HierarchyRectangularNode } from "d3-hierarchy"
import type { Closure } from "./closure.ts"
import { formatSize, h, link } from "./dom.ts"

export type SizeMode = "added" | "nar"
export type ChartKind = "treemap" | "sunburst"

/**
 * A node of the drawn hierarchy: a path, whose box holds what it dominates; a path's own NAR
 * (`own`); or the many small paths of the NAR-size view together (`rest`: how many).
 */
interface Datum {
  readonly i: number
  readonly own: boolean
  /** Levels below the hierarchy's root. */
  readonly level: number
  readonly rest?: number
  readonly restSize?: number
}

type Rect = HierarchyRectangularNode<Datum>

/** Levels of the dominator tree laid out below the box zoomed into. */
const levels = 6
/** Paths shown one by one in the NAR-size view. */
const maxBoxes = 4000

const hierarchyOf = (c: Closure, mode: SizeMode, focus: number): HierarchyNode<Datum> => {
  if (mode === "nar") {
    const order = c.paths.map((_, i) => i).sort((a, b) => c.narSize[b]! - c.narSize[a]!)
    const shown: Array<Datum> = order.slice(0, maxBoxes).map((i) => ({ i, own: true, level: 1 }))
    const rest = order.slice(maxBoxes)
    if (rest.length > 0) shown.push({ i: -1, own: true, level: 1, rest: rest.length, restSize: rest.reduce((sum, i) => sum + c.narSize[i]!, 0) })
    return hierarchy<Datum>({ i: 0, own: false, level: 0 }, (d) => (d.level === 0 ? shown : undefined))
      .sum((d) => (d.level === 0 ? 0 : d.rest !== undefined ? d.restSize! : c.narSize[d.i]!))
  }
  // Paths too small to show what is inside them are one box; children smaller still are one box together.
  const open = c.added[focus]! / 3000
  const opens = (d: Datum) => !d.own && d.level < levels && c.domChildren[d.i]!.length > 0 && c.added[d.i]! >= open
  const children = (d: Datum): Array<Datum> | undefined => {
    if (!opens(d)) return undefined
    const kids = c.domChildren[d.i]!
    const out: Array<Datum> = [{ i: d.i, own: true, level: d.level + 1 }]
    let small = 0
    let smallSize = 0
    for (const i of kids) {
      if (c.added[i]! >= open / 4) out.push({ i, own: false, level: d.level + 1 })
      else { small++; smallSize += c.added[i]! }
    }
    if (small > 0) out.push({ i: -1, own: true, level: d.level + 1, rest: small, restSize: smallSize })
    return out
  }
  // A path's own box holds its NAR; a box not opened holds all it dominates (its added size).
  return hierarchy<Datum>({ i: focus, own: false, level: 0 }, children)
    .sum((d) => (d.rest !== undefined ? d.restSize! : d.own ? c.narSize[d.i]! : !opens(d) ? c.added[d.i]! : 0))
}

const labelIn = (mode: SizeMode) => (c: Closure, d: Datum) =>
  d.rest !== undefined ? `${d.rest.toLocaleString("en")} smaller paths` : d.own && mode === "added" ? `${c.names[d.i]} (itself)` : c.names[d.i]!

const colours = new Map<number, string>()
/** A colour per top-level box, lighter with depth. */
const colour = (node: Rect, focus: Rect) => {
  let top = node
  while (top.parent !== null && top.parent !== focus && top !== focus) top = top.parent
  const hue = Math.round((Math.max(0, top.data.i) * 137.508) % 360)
  const depth = Math.min(4, node.depth - focus.depth)
  const key = hue * 8 + depth
  let c = colours.get(key)
  if (c === undefined) colours.set(key, c = `hsl(${hue} 45% ${52 + depth * 7}%)`)
  return c
}

export interface SizesView {
  readonly element: HTMLElement
  /** The bytes the chart shows in all (the closure's size). */
  readonly total: number
}

export const sizesView = (c: Closure, mode: SizeMode, chart: ChartKind, onSelect: (i: number) => void): SizesView => {
  const label = labelIn(mode)
  let focusIndex = 0
  let focus = hierarchyOf(c, mode, 0) as Rect
  performance.mark("b3-hierarchy")
  const total = focus.value ?? 0
  const canvas = h("canvas", { class: "chart", id: "sizes-canvas" })
  const info = h("div", { class: "chart-info", id: "sizes-info" }, "Hover a box to see its path; click to zoom in.")
  const crumbs = h("div", { class: "crumbs", id: "sizes-crumbs" })
  let drawn: Array<Rect> = []
  let hover: Rect | undefined

  const describe = (node: Rect) => {
    const i = node.data.i
    const share = total > 0 ? ((node.value ?? 0) / total * 100).toFixed(1) : "0"
    if (i < 0) return h("div", {}, h("div", { class: "info-name" }, label(c, node.data)), h("div", {}, `${formatSize(node.value ?? 0)} (${share}% of the closure)`))
    return h("div", {},
      h("div", { class: "info-name" }, label(c, node.data)),
      h("div", {}, `NAR size ${formatSize(c.narSize[i]!)} · added size ${formatSize(c.added[i]!)} · here ${formatSize(node.value ?? 0)} (${share}% of the closure)`),
      h("div", {}, link(`/path/${c.paths[i]}`, "path"), " · ", link(`/why/${c.paths[0]}/${c.paths[i]}`, "why is it here?"), " · ", link(`/graph/${c.paths[0]}?focus=${c.paths[i]}`, "in the graph")))
  }

  const zoomTo = (i: number) => {
    focusIndex = i
    focus = hierarchyOf(c, mode, i) as Rect
    draw()
  }

  /** The dominators of the box zoomed into, from the root. */
  const setCrumbs = () => {
    const chain: Array<number> = []
    for (let i = focusIndex; i >= 0; i = c.idom[i]!) chain.unshift(i)
    crumbs.replaceChildren(...chain.flatMap((i, k) => [
      k > 0 ? " › " : "",
      h("a", { href: "javascript:void 0", onclick: () => zoomTo(i) }, c.names[i]!)
    ]))
  }

  const size = () => {
    const width = Math.max(300, canvas.parentElement?.clientWidth ?? 800)
    const height = Math.max(300, Math.min(720, window.innerHeight - 260))
    const ratio = window.devicePixelRatio || 1
    canvas.width = width * ratio
    canvas.height = height * ratio
    canvas.style.width = `${width}px`
    canvas.style.height = `${height}px`
    const ctx = canvas.getContext("2d")!
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0)
    return { ctx, width, height }
  }

  const drawTreemap = () => {
    const { ctx, width, height } = size()
    const big = (n: Rect) => n.y1 - n.y0 > 34 && n.x1 - n.x0 > 70
    treemap<Datum>().tile(treemapSquarify).size([width, height]).paddingInner(1)
      .paddingTop((n) => (n === focus || big(n) ? 14 : 1)).paddingLeft(1).paddingRight(1).paddingBottom(1)(focus)
    performance.mark("b3-layout")
    drawn = []
    ctx.font = "11px system-ui, sans-serif"
    ctx.textBaseline = "top"
    const stack: Array<Rect> = [focus]
    while (stack.length > 0) {
      const n = stack.pop()!
      const w = n.x1 - n.x0
      const hgt = n.y1 - n.y0
      if (w < 0.5 || hgt < 0.5) continue
      drawn.push(n)
      ctx.fillStyle = n.children ? "#334" : n.data.rest !== undefined ? "#c8cad4" : colour(n, focus)
      if (n !== focus) ctx.fillRect(n.x0, n.y0, w, hgt)
      if (w > 40 && hgt > 12) {
        ctx.fillStyle = n.children && n !== focus ? "#eef" : "#112"
        ctx.save()
        ctx.beginPath()
        ctx.rect(n.x0, n.y0, w, hgt)
        ctx.clip()
        ctx.fillText(`${label(c, n.data)} ${formatSize(n.value ?? 0)}`, n.x0 + 3, n.y0 + 2)
        ctx.restore()
      }
      if (n.children) for (const child of n.children) stack.push(child)
    }
  }

  const drawSunburst = () => {
    const { ctx, width, height } = size()
    const radius = Math.min(width, height) / 2 - 4
    const rings = levels
    partition<Datum>().size([2 * Math.PI, 1])(focus)
    const cx = width / 2
    const cy = height / 2
    const ring = radius / (rings + 1)
    drawn = []
    const stack: Array<Rect> = [focus]
    // Rings are depths below the focus (partition's own y scales with the subtree's height).
    const base = focus.depth
    while (stack.length > 0) {
      const n = stack.pop()!
      const depth = n.depth - base
      if (depth > rings || n.x1 - n.x0 < 0.001) continue
      drawn.push(n)
      ctx.beginPath()
      if (n === focus) ctx.arc(cx, cy, ring, 0, 2 * Math.PI)
      else {
        ctx.arc(cx, cy, (depth + 1) * ring - 0.5, n.x0 - Math.PI / 2, n.x1 - Math.PI / 2)
        ctx.arc(cx, cy, depth * ring + 0.5, n.x1 - Math.PI / 2, n.x0 - Math.PI / 2, true)
        ctx.closePath()
      }
      ctx.fillStyle = n === focus ? "#334" : colour(n, focus)
      ctx.fill()
      if (n.children) for (const child of n.children) stack.push(child)
    }
    ctx.fillStyle = "#eef"
    ctx.font = "12px system-ui, sans-serif"
    ctx.textAlign = "center"
    ctx.textBaseline = "middle"
    ctx.fillText(formatSize(focus.value ?? 0), cx, cy)
    sunburst = { cx, cy, ring, base }
  }
  let sunburst = { cx: 0, cy: 0, ring: 1, base: 0 }

  const hit = (x: number, y: number): Rect | undefined => {
    if (chart === "treemap") {
      for (let k = drawn.length - 1; k >= 0; k--) {
        const n = drawn[k]!
        if (x >= n.x0 && x < n.x1 && y >= n.y0 && y < n.y1) return n
      }
      return undefined
    }
    const dx = x - sunburst.cx
    const dy = y - sunburst.cy
    const r = Math.sqrt(dx * dx + dy * dy) / sunburst.ring
    let angle = Math.atan2(dy, dx) + Math.PI / 2
    if (angle < 0) angle += 2 * Math.PI
    for (let k = drawn.length - 1; k >= 0; k--) {
      const n = drawn[k]!
      const depth = n.depth - sunburst.base
      if (n === focus ? r < 1 : r >= depth && r < depth + 1 && angle >= n.x0 && angle < n.x1) return n
    }
    return undefined
  }

  const draw = () => {
    if (chart === "treemap") drawTreemap()
    else drawSunburst()
    performance.mark("b3-drawn")
    setCrumbs()
    canvas.dataset["focus"] = c.paths[focusIndex]
    canvas.dataset["boxes"] = String(drawn.length)
  }

  canvas.addEventListener("mousemove", (event) => {
    const n = hit(event.offsetX, event.offsetY)
    if (n === hover) return
    hover = n
    canvas.style.cursor = n !== undefined && mode === "added" && !n.data.own && c.domChildren[n.data.i]!.length > 0 ? "zoom-in" : "default"
    if (n) info.replaceChildren(describe(n))
  })
  canvas.addEventListener("click", (event) => {
    const n = hit(event.offsetX, event.offsetY)
    if (n === undefined) return
    info.replaceChildren(describe(n))
    if (n === focus) {
      if (c.idom[focusIndex]! >= 0) zoomTo(c.idom[focusIndex]!)
      return
    }
    // zoom one level: into the box under the focus that holds the click, if it holds others
    let step = n
    while (step.parent !== null && step.parent !== focus) step = step.parent
    if (n.data.i >= 0) onSelect(n.data.i)
    if (mode === "added" && !step.data.own && c.domChildren[step.data.i]!.length > 0) zoomTo(step.data.i)
  })

  // The biggest paths, also as text (for keyboards, screen readers and tests).
  const order = c.paths.map((_, i) => i).sort((a, b) => (mode === "added" ? c.added[b]! - c.added[a]! : c.narSize[b]! - c.narSize[a]!)).slice(0, 15)
  const top = h("ol", { class: "biggest", id: "sizes-biggest" }, ...order.map((i) =>
    h("li", {}, link(`/path/${c.paths[i]}`, c.names[i]!), " ", h("span", { class: "dim" }, formatSize(mode === "added" ? c.added[i]! : c.narSize[i]!)))))

  const element = h("div", { class: "sizes" }, crumbs, h("div", { class: "chart-box" }, canvas), info,
    h("h3", {}, mode === "added" ? "Biggest by added size" : "Biggest by NAR size"), top)
  // Redrawn when the box changes width (not on the observer's first call: it was just drawn).
  let width = 0
  const observer = new ResizeObserver(() => {
    const now = canvas.parentElement?.clientWidth ?? 0
    if (canvas.isConnected && now !== width) { width = now; draw() }
  })
  queueMicrotask(() => { width = canvas.parentElement?.clientWidth ?? 0; draw(); observer.observe(canvas.parentElement!) })
  return { element, total }
}
