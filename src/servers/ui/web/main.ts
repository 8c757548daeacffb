/**
 * The web view's page: a hash router over the views of a store. Everything is loaded lazily from
 * the JSON endpoints beside the page (api/…); the drawing views (sizes, graph) load their code on
 * first use.
 */
import { findInClosure, loadClosure, type Closure } from "./closure.ts"
import { sizesView as drawSizes } from "./sizes.ts"
import { api, ApiError, baseName, formatDelta, formatSize, h, hashOf, link, nameOf, pathLink } from "./dom.ts"

interface Info {
  readonly store: string
  readonly storeDir: string
  readonly roots: ReadonlyArray<{ path: string; narSize: number }>
  readonly capabilities: { readonly logs: boolean; readonly listPaths: boolean }
  readonly trustedKeys: ReadonlyArray<string>
}

interface PathJson {
  readonly path: string
  readonly narHash: string
  readonly narSize: number
  readonly references: ReadonlyArray<string>
  readonly referrers: ReadonlyArray<string> | null
  readonly deriver: string | null
  readonly signatures: ReadonlyArray<{ signature: string; key: string; trusted: boolean }>
  readonly ca: string | null
  readonly registrationTime: number | null
  readonly ultimate: boolean
  readonly log: string | null
}

const main = h("main", { id: "main" })
const storeLabel = h("span", { class: "store", id: "store-uri" })
let info: Info | undefined
let infoPromise: Promise<Info> | undefined
let renderCount = 0

const searchBox = h("input", { type: "search", name: "q", placeholder: "search paths by name or hash part", id: "search", autocomplete: "off" })
document.body.append(
  h("header", {}, h("a", { href: "#/" }, "b3 store view"), storeLabel,
    h("form", { onsubmit: (event: Event) => { event.preventDefault(); if (searchBox.value.trim()) location.hash = `#/search/${encodeURIComponent(searchBox.value.trim())}` } }, searchBox)),
  main)

const setView = (title: string, ...content: Array<Node>) => {
  document.title = `${title} · b3`
  main.replaceChildren(...content)
}

const errorBox = (error: unknown) => h("div", { class: "error" }, error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : String(error))

/** The tabs of a path's pages. */
const tabs = (base: string, active: string) => {
  const entries: Array<[string, string]> = [
    ["path", "Path"], ["files", "Files"], ["log", "Log"], ["sizes", "Sizes"], ["graph", "Graph"], ["why", "Why depends"], ["diff", "Diff"]
  ]
  return h("nav", { class: "tabs" }, ...entries.map(([route, label]) =>
    h("a", { href: `#/${route}/${base}`, class: route === active ? "active" : undefined, id: `tab-${route}` }, label)))
}

const heading = (base: string) => h("h1", {}, nameOf(base), " ", h("span", { class: "hash" }, hashOf(base)))

/** A path from what someone typed: a store path or base name, else the single search result. */
const resolvePath = async (text: string): Promise<string> => {
  const t = text.trim()
  const m = /([0123456789abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-._?=]+)/.exec(t)
  if (m) return m[1]!
  const found = await api<{ results: ReadonlyArray<string> }>("search", { q: t })
  const exact = found.results.filter((p) => nameOf(p) === t)
  if (exact.length === 1) return baseName(exact[0]!)
  if (found.results.length === 1) return baseName(found.results[0]!)
  throw new Error(found.results.length === 0 ? `no path matches '${t}'` : `'${t}' matches ${found.results.length} paths: give the hash part too`)
}

// ---- views ------------------------------------------------------------------------------------

const homeView = async () => {
  const i = info!
  setView("store",
    h("h1", {}, i.store),
    h("p", { class: "dim" }, `Store directory ${i.storeDir}. ${i.capabilities.listPaths ? "Search covers every path of the store." : "This store cannot list its paths: search finds a path by its hash part, or among the roots and the closures looked at."}${i.capabilities.logs ? " Build logs are kept." : ""}`),
    i.roots.length > 0
      ? h("div", {}, h("h3", {}, "Roots"), h("ul", {}, ...i.roots.map((r) => h("li", {}, pathLink(r.path), " ", h("span", { class: "dim" }, formatSize(r.narSize))))))
      : h("p", {}, "Search for a path above."))
}

const searchView = async (q: string) => {
  searchBox.value = q
  setView(`search ${q}`, h("p", { class: "dim" }, "searching…"))
  const found = await api<{ results: ReadonlyArray<string>; total: number }>("search", { q })
  setView(`search ${q}`,
    h("h1", {}, `Paths matching “${q}”`),
    h("p", { class: "dim", id: "search-count" }, found.total > found.results.length ? `${found.total} paths, the first ${found.results.length} shown` : `${found.total} path${found.total === 1 ? "" : "s"}`),
    h("ul", { id: "search-results" }, ...found.results.map((p) => h("li", {}, pathLink(p)))))
}

const pathView = async (base: string) => {
  const p = await api<PathJson>("path", { path: base })
  const closureCell = h("td", { id: "closure-size" }, h("span", { class: "dim" }, "…"))
  const refs = (list: ReadonlyArray<string>) => list.length === 0 ? h("span", { class: "dim" }, "none") : h("ul", { class: "compact" }, ...list.map((r) => h("li", {}, pathLink(r))))
  setView(nameOf(base), heading(base), tabs(base, "path"),
    h("table", { class: "facts", id: "path-facts" },
      h("tr", {}, h("th", {}, "store path"), h("td", { class: "mono" }, p.path)),
      h("tr", {}, h("th", {}, "NAR size"), h("td", { id: "nar-size", "data-bytes": p.narSize }, `${formatSize(p.narSize)} (${p.narSize.toLocaleString("en")} bytes)`)),
      h("tr", {}, h("th", {}, "closure size"), closureCell),
      h("tr", {}, h("th", {}, "NAR hash"), h("td", { class: "mono" }, p.narHash)),
      h("tr", {}, h("th", {}, "deriver"), h("td", {}, p.deriver ? h("span", { class: "mono" }, p.deriver) : h("span", { class: "dim" }, "unknown"))),
      h("tr", {}, h("th", {}, "build log"), h("td", {}, p.log ? link(`/log/${base}`, "show the build log") : h("span", { class: "dim" }, "none kept"))),
      h("tr", {}, h("th", {}, "content address"), h("td", { class: "mono" }, p.ca ?? h("span", { class: "dim" }, "none (input-addressed)"))),
      h("tr", {}, h("th", {}, "signatures"), h("td", {}, p.signatures.length === 0 ? h("span", { class: "dim" }, "none")
        : h("ul", { class: "compact" }, ...p.signatures.map((s) => h("li", {}, h("span", { class: "mono" }, s.key), " ", s.trusted ? "✓ valid, trusted key" : h("span", { class: "dim" }, "not by a trusted key, or invalid")))))),
      p.registrationTime !== null ? h("tr", {}, h("th", {}, "registered"), h("td", {}, new Date(p.registrationTime * 1000).toISOString())) : null,
      h("tr", {}, h("th", {}, `references (${p.references.length})`), h("td", {}, refs(p.references))),
      h("tr", {}, h("th", {}, p.referrers === null ? "referrers" : `referrers (${p.referrers.length})`), h("td", {}, p.referrers === null ? h("span", { class: "dim" }, "this store does not index referrers") : refs(p.referrers)))))
  loadClosure(base).then((c) => closureCell.replaceChildren(`${formatSize(c.closureSize)} in ${c.paths.length} paths (${c.closureSize.toLocaleString("en")} bytes)`),
    (e) => closureCell.replaceChildren(errorBox(e)))
}

const filesView = async (base: string, sub: string) => {
  const listing = await api<{ path: string; node: { type: string; size?: number; target?: string; executable?: boolean }; entries?: ReadonlyArray<{ name: string; type: string; size?: number; target?: string; executable?: boolean; entries?: number }> }>("ls", { path: base + sub })
  const parts = sub.split("/").filter((s) => s.length > 0)
  const crumbs = h("div", { class: "crumbs mono" }, link(`/files/${base}`, nameOf(base)), ...parts.flatMap((part, k) =>
    [" / ", link(`/files/${base}/${parts.slice(0, k + 1).join("/")}`, part)]))
  const body: Array<Node> = []
  if (listing.entries) {
    body.push(h("table", { class: "list", id: "files-list" },
      h("tr", {}, h("th", {}, "name"), h("th", {}, "type"), h("th", { class: "num" }, "size")),
      ...listing.entries.map((e) => h("tr", {},
        h("td", { class: "mono" }, link(`/files/${base}${sub}/${e.name}`, e.name), e.type === "symlink" ? ` → ${e.target}` : ""),
        h("td", {}, e.type === "regular" && e.executable ? "executable" : e.type),
        h("td", { class: "num" }, e.type === "regular" ? formatSize(e.size!) : e.type === "directory" ? `${e.entries} entries` : "")))))
  } else if (listing.node.type === "symlink") {
    body.push(h("p", {}, "symlink to ", h("span", { class: "mono" }, listing.node.target!)))
  } else {
    const file = await api<{ size: number; truncated: boolean; text?: string; binary?: boolean; head?: string }>("file", { path: base + sub })
    body.push(h("p", { class: "dim" }, `${formatSize(file.size)}${listing.node.executable ? ", executable" : ""}${file.truncated ? " (the first 1 MiB shown)" : ""}`))
    body.push(file.text !== undefined ? h("pre", { class: "content", id: "file-content" }, file.text)
      : h("pre", { class: "content", id: "file-content" }, `binary file; first bytes:\n${file.head!.replace(/(.{32})/g, "$1\n")}`))
  }
  setView(nameOf(base), heading(base), tabs(base, "files"), crumbs, ...body)
}

const logView = async (base: string) => {
  const log = await api<{ drv: string; text: string; truncated: boolean }>("log", { path: base })
  setView(`log ${nameOf(base)}`, heading(base), tabs(base, "log"),
    h("p", { class: "dim" }, `build log of ${log.drv}${log.truncated ? " (its last 8 MiB)" : ""}`),
    h("pre", { class: "content", id: "log-text" }, log.text))
}

const sizesView = async (base: string, params: URLSearchParams) => {
  const started = performance.now()
  const c = await loadClosure(base)
  const mode = params.get("mode") === "nar" ? "nar" : "added"
  const chart = params.get("chart") === "sunburst" ? "sunburst" : "treemap"
  const option = (key: string, value: string, label: string, current: string) => {
    const next = new URLSearchParams(params)
    next.set(key, value)
    return h("a", { href: `#/sizes/${base}?${next}`, class: current === value ? "active" : undefined, id: `sizes-${value}` }, label)
  }
  const view = drawSizes(c, mode, chart, () => {})
  setView(`sizes ${nameOf(base)}`, heading(base), tabs(base, "sizes"),
    h("div", { class: "toolbar" },
      h("span", { class: "group" }, option("chart", "treemap", "treemap", chart), option("chart", "sunburst", "sunburst", chart)),
      h("span", { class: "group" }, option("mode", "added", "by added size", mode), option("mode", "nar", "by NAR size", mode)),
      h("span", { id: "sizes-total", "data-bytes": view.total, "data-paths": c.paths.length },
        `closure: ${c.paths.length} paths, ${formatSize(view.total)} (${view.total.toLocaleString("en")} bytes)`)),
    view.element)
  requestAnimationFrame(() => {
    performance.mark("b3-sizes-drawn")
    document.body.dataset["drawnMs"] = String(Math.round(performance.now() - started))
  })
}

const graphView = async (base: string, params: URLSearchParams) => {
  const [c, graph] = await Promise.all([loadClosure(base), import("./graph.ts")])
  const focus = params.get("focus")
  const view = graph.graphView(c, focus === null ? undefined : c.indexOf.get(baseName(focus)))
  setView(`graph ${nameOf(base)}`, heading(base), tabs(base, "graph"), view.element)
  requestAnimationFrame(() => performance.mark("b3-graph-drawn"))
}

/** Two-path pages (why, diff): a form for the second path. */
const picker = (route: string, from: string, to: string | undefined, label: string, closure?: Closure) => {
  const input = h("input", { type: "text", id: `${route}-to`, placeholder: "store path, base name or name", value: to ?? "" })
  const suggestions = h("ul", { class: "matches" })
  const message = h("span", { class: "dim" })
  if (closure) {
    input.addEventListener("input", () => suggestions.replaceChildren(...findInClosure(closure, input.value, 10).map((i) =>
      h("li", {}, link(`/${route}/${from}/${closure.paths[i]}`, closure.names[i]!), " ", h("span", { class: "hash" }, closure.paths[i]!.slice(0, 8))))))
  }
  return h("div", {},
    h("form", { class: "pick", onsubmit: (event: Event) => {
      event.preventDefault()
      resolvePath(input.value).then((p) => { location.hash = `#/${route}/${from}/${p}` }, (e) => { message.textContent = String(e.message ?? e) })
    } }, h("label", {}, label), input, h("button", { type: "submit", id: `${route}-go` }, "show"), message),
    suggestions)
}

interface WhyJson {
  readonly depends: boolean
  readonly chain: ReadonlyArray<{ path: string; narSize: number; added: number }>
  readonly leadingTo: number
  readonly directReferrers: ReadonlyArray<{ path: string; narSize: number }>
}
interface HitsJson { readonly hits: ReadonlyArray<{ file: string; kind: string; offset: number; snippet: string }>; readonly total: number }

const snippet = (text: string, hash: string) => {
  const at = text.indexOf(hash)
  return at < 0 ? h("span", { class: "snippet" }, text)
    : h("span", { class: "snippet" }, text.slice(0, at), h("mark", {}, hash), text.slice(at + hash.length))
}

const whyView = async (from: string, to: string | undefined) => {
  const c = await loadClosure(from)
  const parts: Array<Node> = [heading(from), tabs(from, "why"), picker("why", from, to, "to", c)]
  if (to === undefined) {
    setView(`why ${nameOf(from)}`, ...parts, h("p", { class: "dim" }, "Which path of the closure? Type its name."))
    return
  }
  const why = await api<WhyJson>("why", { from, to })
  if (!why.depends) {
    setView(`why ${nameOf(from)}`, ...parts, h("p", { id: "why-result" }, `${nameOf(from)} does not depend on ${nameOf(to)}.`))
    return
  }
  const chain = h("ol", { class: "chain", id: "why-chain" })
  why.chain.forEach((hop, k) => {
    chain.append(h("li", { class: "hop", "data-path": hop.path }, pathLink(hop.path), " ", h("span", { class: "dim" }, `NAR ${formatSize(hop.narSize)}`)))
    const next = why.chain[k + 1]
    if (next === undefined) return
    const via = h("li", { class: "via" }, "→ looking for the reference…")
    chain.append(via)
    api<HitsJson>("hits", { path: baseName(hop.path), ref: baseName(next.path) }).then((hits) => {
      via.replaceChildren(...(hits.total === 0 ? ["→ referenced (registered reference; the hash part is not in the NAR's files)"] : [
        `→ ${hits.total} occurrence${hits.total === 1 ? "" : "s"} of ${hashOf(next.path)}:`,
        h("ul", { class: "compact hits" }, ...hits.hits.slice(0, 10).map((hit) =>
          h("li", { class: "hit", "data-file": hit.file, "data-offset": hit.offset },
            h("span", { class: "mono" }, `${hit.file === "" ? "/" : hit.file}`), hit.kind === "symlink" ? " (symlink target)" : "", ` at offset ${hit.offset}: `,
            h("span", { class: "mono" }, snippet(hit.snippet, hashOf(next.path))))))
      ]))
    }, (e) => via.replaceChildren(errorBox(e)))
  })
  setView(`why ${nameOf(from)} → ${nameOf(to)}`, ...parts,
    h("p", { class: "summary" }, `${nameOf(from)} depends on ${nameOf(to)} through this chain of ${why.chain.length - 1} reference${why.chain.length === 2 ? "" : "s"} (shortest). ${why.leadingTo} paths of the closure lead to it.`),
    chain,
    h("h3", {}, `Referenced directly by (${why.directReferrers.length})`),
    h("ul", { class: "compact", id: "why-direct" }, ...why.directReferrers.slice(0, 300).map((r) =>
      h("li", {}, pathLink(r.path), " ", link(`/why/${from}/${baseName(r.path)}`, "why this one?")))))
}

interface DiffJson {
  readonly fromSize: number
  readonly toSize: number
  readonly unchanged: number
  readonly added: ReadonlyArray<{ path: string; narSize: number }>
  readonly removed: ReadonlyArray<{ path: string; narSize: number }>
  readonly changed: ReadonlyArray<{ from: { path: string; narSize: number }; to: { path: string; narSize: number }; delta: number }>
}

const deltaCell = (delta: number) => h("td", { class: `num ${delta > 0 ? "delta-up" : delta < 0 ? "delta-down" : ""}` }, formatDelta(delta))

const diffView = async (from: string, to: string | undefined) => {
  const parts: Array<Node> = [heading(from), tabs(from, "diff"), picker("diff", from, to, "with")]
  if (to === undefined) {
    setView(`diff ${nameOf(from)}`, ...parts, h("p", { class: "dim" }, "Compare this closure with another path's (a newer version, say)."))
    return
  }
  const d = await api<DiffJson>("diff", { from, to })
  const rows = (list: DiffJson["added"], sign: number, id: string) => h("table", { class: "list", id },
    h("tr", {}, h("th", {}, "path"), h("th", { class: "num" }, "NAR size")),
    ...list.map((e) => h("tr", { "data-path": e.path }, h("td", {}, pathLink(e.path)), deltaCell(sign * e.narSize))))
  setView(`diff ${nameOf(from)} → ${nameOf(to)}`, ...parts,
    h("p", { class: "summary", id: "diff-summary" }, `${nameOf(from)} → `, pathLink(to), `: closure ${formatSize(d.fromSize)} → ${formatSize(d.toSize)} (${formatDelta(d.toSize - d.fromSize)}); `,
      `${d.changed.length} changed, ${d.added.length} added, ${d.removed.length} removed, ${d.unchanged} unchanged.`),
    h("h3", {}, `Changed (${d.changed.length})`),
    h("table", { class: "list", id: "diff-changed" },
      h("tr", {}, h("th", {}, "name"), h("th", {}, "from"), h("th", {}, "to"), h("th", { class: "num" }, "size"), h("th", { class: "num" }, "delta")),
      ...d.changed.map((e) => h("tr", { "data-from": e.from.path, "data-to": e.to.path },
        h("td", {}, nameOf(e.to.path)), h("td", {}, link(`/path/${baseName(e.from.path)}`, h("span", { class: "hash" }, hashOf(e.from.path).slice(0, 12)))),
        h("td", {}, link(`/path/${baseName(e.to.path)}`, h("span", { class: "hash" }, hashOf(e.to.path).slice(0, 12)))),
        h("td", { class: "num" }, `${formatSize(e.from.narSize)} → ${formatSize(e.to.narSize)}`), deltaCell(e.delta)))),
    h("h3", {}, `Added (${d.added.length})`), rows(d.added, 1, "diff-added"),
    h("h3", {}, `Removed (${d.removed.length})`), rows(d.removed, -1, "diff-removed"))
}

// ---- routing ----------------------------------------------------------------------------------

const route = async () => {
  const count = ++renderCount
  const hash = location.hash.replace(/^#/, "") || "/"
  const [pathPart, query = ""] = hash.split("?")
  const params = new URLSearchParams(query)
  const segments = pathPart!.split("/").filter((s) => s.length > 0).map(decodeURIComponent)
  const [view, first, second] = segments
  document.body.dataset["view"] = view ?? "home"
  delete document.body.dataset["ready"]
  try {
    const infoLoaded = (infoPromise ??= api<Info>("info").then((i) => { info = i; storeLabel.textContent = i.store; return i }))
    if (view === undefined) await infoLoaded.then(homeView)
    else if (view === "search") await searchView(first ?? "")
    else if (first === undefined) throw new Error(`which path? (#/${view}/<path>)`)
    else if (view === "path") await pathView(first)
    else if (view === "files") await filesView(first, segments.length > 2 ? `/${segments.slice(2).join("/")}` : "")
    else if (view === "log") await logView(first)
    else if (view === "sizes") await sizesView(first, params)
    else if (view === "graph") await graphView(first, params)
    else if (view === "why") await whyView(first, second)
    else if (view === "diff") await diffView(first, second)
    else throw new Error(`no view '${view}'`)
  } catch (error) {
    if (count === renderCount) setView("error", ...(first ? [heading(baseName(first)), tabs(baseName(first), view ?? "")] : []), errorBox(error))
  }
  if (count === renderCount) document.body.dataset["ready"] = view ?? "home"
}

window.addEventListener("hashchange", () => { void route() })
void route()
