import { chromium } from "playwright-core"
import { mkdtempSync } from "node:fs"
const [url] = process.argv.slice(2)
const context = await chromium.launchPersistentContext(mkdtempSync("/tmp/chr-"), { executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1400, height: 900 } })
const page = await context.newPage()
page.on("pageerror", (e) => console.log("pageerror:", e.message))
await page.goto(url)
await page.waitForFunction(() => document.body.dataset.ready !== undefined, null, { timeout: 20000 })
await page.waitForTimeout(200)
console.log(await page.evaluate(() => JSON.stringify([...performance.getEntriesByType("mark"), ...performance.getEntriesByType("paint")].map((e) => [e.name, Math.round(e.startTime)]))))
console.log(await page.evaluate(() => JSON.stringify(performance.getEntriesByType("resource").map((e) => [e.name.slice(-40), Math.round(e.startTime), Math.round(e.responseEnd)]))))
await context.close()
