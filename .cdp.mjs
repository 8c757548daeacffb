import { chromium } from "playwright-core"
import { mkdtempSync } from "node:fs"
const [url, mark] = process.argv.slice(2)
const context = await chromium.launchPersistentContext(mkdtempSync("/tmp/chr-"), { executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1400, height: 900 } })
const page = await context.newPage()
const cdp = await context.newCDPSession(page)
await cdp.send("Profiler.enable"); await cdp.send("Profiler.setSamplingInterval", { interval: 200 }); await cdp.send("Profiler.start")
await page.goto(url)
await page.waitForFunction(`performance.getEntriesByName(${JSON.stringify(mark)}).length > 0`, null, { timeout: 60000 })
const { profile: p } = await cdp.send("Profiler.stop")
console.log(await page.evaluate(() => JSON.stringify(performance.getEntriesByType("mark").map((e) => [e.name, Math.round(e.startTime)]))))
const byId = new Map(p.nodes.map((n) => [n.id, n])); const self = new Map()
for (let k = 0; k < p.samples.length; k++) { const n = byId.get(p.samples[k]); const key = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber}`; self.set(key, (self.get(key) || 0) + (p.timeDeltas[k] || 0) / 1000) }
console.log([...self].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([k, v]) => `${v.toFixed(0).padStart(6)}ms ${k}`).join("\n"))
await context.close()
