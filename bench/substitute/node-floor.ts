/**
 * The memory floor of bench/substitute's workload in bare Node: the closure resolved level by level
 * (narinfos 128 in flight) and every NAR downloaded (16 at a time) over node:http with kept-alive
 * connections, keeping per path only its NAR's URL and its references, writing nothing, checking
 * nothing, no Effect, no b3. bench/substitute runs it beside `b3 copy`, with b3's V8 flags for HTTP
 * copies and with the tightest ones, to show what a copy's peak RSS cannot go below in Node.
 *   node [V8 FLAGS] bench/substitute/node-floor.ts BASE-URL ROOT-STORE-PATH
 */
import { Agent, request } from "node:http"

const [base, root] = process.argv.slice(2) as [string, string]
const agent = new Agent({ keepAlive: true, maxSockets: 128 })
const get = (path: string) => new Promise<Buffer>((resolve, reject) => {
  request(`${base}/${path}`, { agent }, (res) => {
    const chunks: Array<Buffer> = []
    res.on("data", (c: Buffer) => chunks.push(c))
    res.on("end", () => res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`GET ${path}: ${res.statusCode}`)))
  }).on("error", reject).end()
})
const hashPart = (baseName: string) => baseName.slice(0, 32)

const found = new Map<string, { readonly url: string; readonly refs: ReadonlyArray<string> } | undefined>()
let frontier = [hashPart(root.slice(root.lastIndexOf("/") + 1))]
found.set(frontier[0]!, undefined)
while (frontier.length > 0) {
  const next: Array<string> = []
  const queue = [...frontier]
  await Promise.all(Array.from({ length: 128 }, async () => {
    for (let h = queue.pop(); h !== undefined; h = queue.pop()) {
      const text = (await get(`${h}.narinfo`)).toString()
      const refs = (/^References: (.*)$/m.exec(text)?.[1] ?? "").split(" ").filter((r) => r.length > 0).map(hashPart)
      found.set(h, { url: /^URL: (.*)$/m.exec(text)![1]!, refs })
      for (const r of refs) if (!found.has(r)) { found.set(r, undefined); next.push(r) }
    }
  }))
  frontier = next
}
const all = [...found.values()]
let bytes = 0
await Promise.all(Array.from({ length: 16 }, async () => {
  for (let p = all.pop(); p !== undefined; p = all.pop()) {
    const nar = await get(p.url)
    bytes += nar.length
  }
}))
agent.destroy()
console.log(`${found.size} paths, ${bytes} bytes of NARs`)
