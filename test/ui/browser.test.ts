/**
 * The web view in a real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core;
 * no browser download), served by `b3 ui` over a local store holding a generated closure of 2,000
 * paths, a second version of it, and a real `b3 build` whose log the page shows. Each view is
 * checked against what the b3 CLI says about the same store, and screenshotted (to docs/screenshots with B3_SCREENSHOTS=1).
 */
import { Effect } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { existsSync, mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { chromium, type BrowserContext, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import { b3, b3Bin } from "../support/b3.ts"
import { addBusybox } from "../support/busybox.ts"
import { planClosure, writeClosure } from "../support/generated-closure.ts"
import { makeScratch, removeScratch } from "../support/nix.ts"

const repo = fileURLToPath(new URL("../../", import.meta.url))
// B3_SCREENSHOTS=1 renews README's pictures in docs/screenshots; otherwise they go to the scratch dir,
// so a test run leaves the checkout as it was
const shotsInDocs = process.env.B3_SCREENSHOTS === "1"
let shots = join(repo, "docs", "screenshots")
const chromiumPath = "/usr/bin/chromium"

let scratch: string
let storeRoot: string
let store: string
let v1: Array<string>
let v2: Array<string>
let app: string
let busybox: string
let server: ChildProcess | undefined
let ui: string
let context: BrowserContext | undefined
let page: Page

const base = (path: string) => path.slice(path.lastIndexOf("/") + 1)
const nameOf = (path: string) => base(path).slice(33)

/** `b3 path-info --closure --size`: each path of the closure with its NAR size. */
const closureSizes = (path: string): Map<string, number> => new Map(
  b3(["path-info", "--store", store, "--closure", "--size", path]).split("\n").map((line) => {
    const [p, size] = line.split("\t")
    return [p!, Number(size!.trim())] as const
  }))

/** Waits until the page's router has finished showing `view`. */
const show = async (route: string, view: string) => {
  await page.goto(`${ui}#${route}`)
  await page.waitForSelector(`body[data-ready="${view}"]`, { timeout: 30_000 })
}
const screenshot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`) })

beforeAll(async () => {
  scratch = makeScratch("b3-ui-browser-")
  storeRoot = join(scratch, "store")
  store = `local?root=${storeRoot}`
  const plan = planClosure(2000, 42)
  ;[v1, v2] = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const local = yield* LocalStore.make({ root: storeRoot })
    const first = yield* writeClosure(local.write, "/nix/store", plan)
    // version 2: two paths change (and with them every path above them), one goes, one comes
    const second = yield* writeClosure(local.write, "/nix/store", plan, { change: [700, 1400], drop: 1999, addUnder: 5 })
    return [first as Array<string>, second as Array<string>]
  })))
  busybox = addBusybox(storeRoot)
  const built = spawn(b3Bin, ["build", "--store", store, "--json", join(repo, "test/ui/app-derivation.ts")], {
    env: { ...process.env, B3_UI_BUSYBOX: busybox, B3_UI_ROOT: v1[0]! }
  })
  let out = ""
  built.stdout.on("data", (chunk) => { out += chunk })
  let err = ""
  built.stderr.on("data", (chunk) => { err += chunk })
  const status = await new Promise<number | null>((resolve) => built.on("close", resolve))
  if (status !== 0) throw new Error(`b3 build failed: ${err}`)
  app = (JSON.parse(out) as Array<{ outputs: Record<string, string> }>)[0]!.outputs["out"]!

  // `b3 ui` as a user starts it, on a free port; it prints where it listens.
  server = spawn(b3Bin, ["ui", "--store", store, "--listen", "127.0.0.1:0", "--json", "--quiet", v1[0]!, app], { stdio: ["ignore", "pipe", "pipe"] })
  ui = await new Promise<string>((resolve, reject) => {
    let text = ""
    server!.stdout!.on("data", (chunk) => {
      text += chunk
      if (text.includes("\n")) resolve((JSON.parse(text.split("\n")[0]!) as { ui: string }).ui)
    })
    server!.on("close", (code) => reject(new Error(`b3 ui exited with ${code}`)))
  })

  if (!shotsInDocs) shots = join(scratch, "screenshots")
  mkdirSync(shots, { recursive: true })
  context = await chromium.launchPersistentContext(join(scratch, "chromium-profile"), {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 1400, height: 900 }
  })
  page = await context.newPage()
  page.on("pageerror", (error) => { throw error })
}, 240_000)

afterAll(async () => {
  await context?.close()
  server?.kill()
  if (scratch) removeScratch(scratch)
})

describe("the web view in Chromium", () => {
  it("is served beside the binary-cache protocol, on the same listener", async () => {
    const origin = new URL(ui).origin
    expect(await (await fetch(`${origin}/nix-cache-info`)).text()).toContain("StoreDir: /nix/store")
    expect((await fetch(`${origin}/${base(v1[0]!).slice(0, 32)}.narinfo`)).status).toBe(200)
    const bare = await fetch(`${origin}/ui`, { redirect: "manual" })
    expect(bare.status).toBe(308)
    expect(bare.headers.get("location")).toBe("/ui/")
    expect((await fetch(`${ui}api/info`)).status).toBe(200)
    expect((await fetch(`${ui}api/info`, { method: "POST" })).status).toBe(405)
  })

  it("finds a path by name from the search box", async () => {
    expect(existsSync(chromiumPath)).toBe(true)
    await show("/", "home")
    const wanted = v1[57]!
    await page.fill("#search", nameOf(wanted))
    await page.press("#search", "Enter")
    await page.waitForSelector('body[data-ready="search"]')
    const found = await page.$$eval("#search-results a", (links) => links.map((a) => a.getAttribute("href")))
    expect(found).toContain(`#/path/${base(wanted)}`)
    await screenshot("search")
    // by hash part: exactly that path
    const other = v1[1234]!
    await page.fill("#search", base(other).slice(0, 32))
    await page.press("#search", "Enter")
    await page.waitForFunction(`document.body.dataset.ready === "search" && document.querySelector("#search-results")?.textContent?.includes(${JSON.stringify(nameOf(other))})`)
    expect(await page.$$eval("#search-results a", (links) => links.map((a) => a.getAttribute("href")))).toEqual([`#/path/${base(other)}`])
    await page.fill("#search", "")
  })

  it("shows a path's facts", async () => {
    await show(`/path/${base(v1[0]!)}`, "path")
    const info = (JSON.parse(b3(["path-info", "--store", store, "--json", v1[0]!])) as Array<{ narSize: number; references: Array<string> }>)[0]!
    expect(Number(await page.getAttribute("#nar-size", "data-bytes"))).toBe(info.narSize)
    const total = [...closureSizes(v1[0]!).values()].reduce((a, b) => a + b, 0)
    await page.waitForFunction(`document.querySelector("#closure-size")?.textContent?.includes(${JSON.stringify(`${total.toLocaleString("en")} bytes`)})`)
    const refs = await page.$$eval("#path-facts a", (links) => links.map((a) => a.getAttribute("href")))
    for (const ref of info.references) expect(refs).toContain(`#/path/${base(ref)}`)
    await screenshot("path")
  })

  it("draws the treemap and the sunburst with the closure's total size, as b3 path-info counts it", async () => {
    const sizes = closureSizes(v1[0]!)
    const total = [...sizes.values()].reduce((a, b) => a + b, 0)
    expect(sizes.size).toBe(2000)
    for (const [route, name] of [["", "treemap-added"], ["?mode=nar", "treemap-nar"], ["?chart=sunburst", "sunburst-added"]] as const) {
      await show(`/sizes/${base(v1[0]!)}${route}`, "sizes")
      expect(Number(await page.getAttribute("#sizes-total", "data-bytes"))).toBe(total)
      expect(Number(await page.getAttribute("#sizes-total", "data-paths"))).toBe(sizes.size)
      expect(Number(await page.getAttribute("#sizes-canvas", "data-boxes"))).toBeGreaterThan(100)
      await screenshot(`sizes-${name}`)
    }
    // The biggest by added size is listed, and it is a path of the closure.
    const biggest = await page.$$eval("#sizes-biggest a", (links) => links.map((a) => a.getAttribute("href")!.replace("#/path/", "")))
    for (const b of biggest) expect(sizes.has(`/nix/store/${b}`)).toBe(true)
  })

  it("reveals a deep path in the dependency graph", async () => {
    await show(`/graph/${base(v1[0]!)}`, "graph")
    const deep = v1[1500]!
    await page.fill("#graph-search", nameOf(deep))
    await page.click(`.matches a:text-is("${nameOf(deep)}")`)
    await page.waitForSelector(`#graph-canvas[data-selected="${base(deep)}"]`)
    expect(await page.textContent("#graph-panel")).toContain(nameOf(deep))
    await screenshot("graph")
  })

  it("shows why one path depends on another: a chain that exists, with the file offsets of the references", async () => {
    const target = v1[1500]!
    await show(`/why/${base(v1[0]!)}/${base(target)}`, "why")
    await page.waitForFunction(`document.querySelectorAll("#why-chain li.via").length > 0 &&
      [...document.querySelectorAll("#why-chain li.via")].every((li) => li.querySelector(".hit") !== null)`)
    const chain = await page.$$eval("#why-chain li.hop", (hops) => hops.map((li) => li.getAttribute("data-path")!))
    expect(chain[0]).toBe(v1[0])
    expect(chain[chain.length - 1]).toBe(target)
    const infos = JSON.parse(b3(["path-info", "--store", store, "--json", ...chain])) as Array<{ path: string; references: Array<string> }>
    const refsOf = new Map(infos.map((i) => [i.path, i.references]))
    const offsets = await page.$$eval("#why-chain li.via", (vias) => vias.map((li) => Number(li.querySelector(".hit")!.getAttribute("data-offset"))))
    for (let k = 0; k + 1 < chain.length; k++) {
      expect(refsOf.get(chain[k]!)).toContain(chain[k + 1])
      // the referrer is a single text file: the hash part is at the offset the page shows
      const bytes = readFileSync(join(storeRoot, "nix", "store", base(chain[k]!)))
      expect(bytes.subarray(offsets[k]!, offsets[k]! + 32).toString()).toBe(base(chain[k + 1]!).slice(0, 32))
    }
    await screenshot("why-depends")
  })

  it("lists exactly the changed, added and removed paths between two closures", async () => {
    const before = closureSizes(v1[0]!)
    const after = closureSizes(v2[0]!)
    const byName = (m: Map<string, number>) => new Map([...m.keys()].map((p) => [nameOf(p), p]))
    const a = byName(before)
    const b = byName(after)
    expect(a.size).toBe(before.size) // names are unique in the generated closure
    const changed = [...a].filter(([n, p]) => b.has(n) && b.get(n) !== p).map(([n, p]) => `${p} ${b.get(n)}`).sort()
    const added = [...b].filter(([n]) => !a.has(n)).map(([, p]) => p).sort()
    const removed = [...a].filter(([n]) => !b.has(n)).map(([, p]) => p).sort()
    expect(changed.length).toBeGreaterThan(2)
    expect(changed.some((c) => c.startsWith(`${v1[700]} `))).toBe(true)
    await show(`/diff/${base(v1[0]!)}/${base(v2[0]!)}`, "diff")
    const rows = async (table: string) => (await page.$$eval(`#${table} tr[data-path]`, (trs) => trs.map((tr) => tr.getAttribute("data-path")!))).sort()
    const shownChanged = (await page.$$eval("#diff-changed tr[data-from]", (trs) => trs.map((tr) => `${tr.getAttribute("data-from")} ${tr.getAttribute("data-to")}`))).sort()
    expect(shownChanged).toEqual(changed)
    expect(await rows("diff-added")).toEqual(added)
    expect(await rows("diff-removed")).toEqual(removed)
    await screenshot("diff")
  })

  it("shows a build log and a path's files", async () => {
    await show(`/log/${base(app)}`, "log")
    const log = await page.textContent("#log-text")
    expect(log).toContain(`building app-1.0 against ${v1[0]}`)
    expect(log).toContain("app-1.0 built")
    await screenshot("log")
    await show(`/files/${base(busybox)}/bin`, "files")
    const names = await page.$$eval("#files-list a", (links) => links.map((a) => a.textContent))
    expect(names).toEqual(["busybox", "sh"])
    await screenshot("files")
    // a text file's contents: the app's output is one file, as the build wrote it
    await show(`/files/${base(app)}`, "files")
    expect(await page.textContent("#file-content")).toBe(readFileSync(join(storeRoot, "nix", "store", base(app)), "utf8"))
    expect(await page.textContent("#file-content")).toBe(`uses ${v1[0]}\n`)
    await screenshot("file-text")
  })
})
