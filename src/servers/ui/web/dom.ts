/** Small DOM and formatting helpers for the web view. */

type Child = Node | string | number | null | undefined | false
type Attrs = Record<string, string | number | boolean | undefined | ((event: Event) => void)>

/** An element with attributes (`on…` are listeners) and children. */
export const h = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Array<Child | Array<Child>>): HTMLElementTagNameMap[K] => {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue
    if (typeof value === "function") el.addEventListener(key.slice(2), value)
    else if (value === true) el.setAttribute(key, "")
    else el.setAttribute(key, String(value))
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    el.append(typeof child === "object" ? child : String(child))
  }
  return el
}

const units = ["B", "KiB", "MiB", "GiB", "TiB"]
/** 1536 -> "1.5 KiB". */
export const formatSize = (bytes: number): string => {
  const sign = bytes < 0 ? "-" : ""
  let n = Math.abs(bytes)
  let u = 0
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++ }
  return `${sign}${u === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[u]}`
}

export const formatDelta = (bytes: number): string => (bytes > 0 ? "+" : "") + formatSize(bytes)

/** `/nix/store/<hash>-<name>` or `<hash>-<name>` -> `<hash>-<name>`. */
export const baseName = (path: string): string => path.slice(path.lastIndexOf("/") + 1)
/** The name after the hash part. */
export const nameOf = (path: string): string => baseName(path).slice(33)
export const hashOf = (path: string): string => baseName(path).slice(0, 32)

export class ApiError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

/** GETs a JSON endpoint below the page (`api/NAME?…`). */
export const api = async <A>(name: string, params: Record<string, string> = {}): Promise<A> => {
  const response = await fetch(`api/${name}?${new URLSearchParams(params)}`)
  const body = await response.json() as A & { error?: string }
  if (!response.ok) throw new ApiError(response.status, body.error ?? response.statusText)
  return body
}

/** A link to a route of the page. */
export const link = (route: string, ...children: Array<Child>) => h("a", { href: `#${route}` }, ...children)

/** A store path as a link to its page: the name, then the hash part dimmed. */
export const pathLink = (path: string) =>
  link(`/path/${baseName(path)}`, h("span", { class: "name" }, nameOf(path)), " ", h("span", { class: "hash" }, hashOf(path)))
