/** The web view's JSON endpoints and their pure parts, on the in-memory store (no browser). */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import { openFileChunkStore, storeContext } from "../../src/layers/chunked/opener.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { decodeNar } from "../../src/nar/decode.ts"
import * as Tree from "../../src/nar/tree.ts"
import { closureGraph, diffClosures, dominators, whyDepends, type Node } from "../../src/servers/ui/graph.ts"
import { makeUiHandler } from "../../src/servers/ui/handler.ts"
import { referenceHits } from "../../src/servers/ui/precise.ts"
import { planClosure, writeClosure } from "../support/generated-closure.ts"

const node = (baseName: string, narSize: number, references: Array<string>): Node => ({ baseName, narSize, references })
const h = (c: string) => c.repeat(32)

describe("closure graph", () => {
  it("finds immediate dominators and added sizes", () => {
    // r -> a, b; a -> c; b -> c; c -> d; a -> e
    const nodes = new Map([
      node(`${h("0")}-r`, 1, [`${h("1")}-a`, `${h("2")}-b`]),
      node(`${h("1")}-a`, 10, [`${h("3")}-c`, `${h("5")}-e`, `${h("1")}-a`]),
      node(`${h("2")}-b`, 20, [`${h("3")}-c`]),
      node(`${h("3")}-c`, 30, [`${h("4")}-d`]),
      node(`${h("4")}-d`, 40, []),
      node(`${h("5")}-e`, 50, [])
    ].map((n) => [n.baseName, n]))
    const g = closureGraph(`${h("0")}-r`, nodes)
    const at = (name: string) => g.index.get(name)!
    const name = (i: number) => g.nodes[i]!.baseName.slice(33)
    assert.strictEqual(g.closureSize, 151)
    assert.strictEqual(name(g.idom[at(`${h("3")}-c`)]!), "r") // reached through a and b
    assert.strictEqual(name(g.idom[at(`${h("4")}-d`)]!), "c")
    assert.strictEqual(name(g.idom[at(`${h("5")}-e`)]!), "a")
    assert.strictEqual(g.idom[0], -1)
    assert.strictEqual(g.added[0], 151)
    assert.strictEqual(g.added[at(`${h("1")}-a`)], 60) // a and e; c stays through b
    assert.strictEqual(g.added[at(`${h("3")}-c`)], 70)
    assert.deepStrictEqual(g.refs[at(`${h("1")}-a`)]!.map(name), ["c", "e"]) // no self-reference
    const why = whyDepends(g, at(`${h("4")}-d`))!
    assert.deepStrictEqual(why.chain.map(name), ["r", "a", "c", "d"])
    assert.strictEqual(why.leadingTo, 4)
    assert.deepStrictEqual(why.directReferrers.map(name), ["c"])
    assert.strictEqual(whyDepends(g, 99), undefined)
  })

  it("handles a cycle and a single node", () => {
    assert.deepStrictEqual([...dominators([[1], [2], [1]])], [-1, 0, 1])
    assert.deepStrictEqual([...dominators([[]])], [-1])
  })

  it("diffs closures by name", () => {
    const from = [node(`${h("a")}-x-1`, 5, []), node(`${h("b")}-y`, 7, []), node(`${h("c")}-gone`, 3, []), node(`${h("d")}-same`, 1, [])]
    const to = [node(`${h("f")}-x-1`, 9, []), node(`${h("b")}-y`, 7, []), node(`${h("g")}-new`, 4, []), node(`${h("d")}-same`, 1, [])]
    const d = diffClosures(from, to)
    assert.deepStrictEqual(d.changed.map((c) => [c.from.baseName.slice(0, 1), c.to.baseName.slice(0, 1), c.delta]), [["a", "f", 4]])
    assert.deepStrictEqual(d.added.map((e) => e.baseName.slice(33)), ["new"])
    assert.deepStrictEqual(d.removed.map((e) => e.baseName.slice(33)), ["gone"])
    assert.strictEqual(d.unchanged, 2)
    assert.strictEqual(d.toSize - d.fromSize, 5)
  })
})

describe("reference hits", () => {
  it.effect("finds the hash part in files and symlinks, across chunk boundaries, with offsets", () => Effect.gen(function*() {
    const hash = "0123456789abcdfghijklmnpqrsvwxyz"
    const big = `${"-".repeat(70_000)}/nix/store/${hash}-dep/lib${"-".repeat(10)}`
    const nar = Tree.toNar(Tree.directory({
      bin: Tree.directory({ tool: Tree.regular(`#!/bin/sh\nexec /nix/store/${hash}-dep/bin/x\n`, true) }),
      data: Tree.regular(big),
      link: Tree.symlink(`/nix/store/${hash}-dep`),
      none: Tree.regular("nothing here")
    }))
    assert.isTrue(nar._tag === "Success")
    const bytes = (nar as { success: Uint8Array }).success
    for (const size of [1, 7, 31, 32, 33, 4096, bytes.length]) {
      const chunks: Array<Uint8Array> = []
      for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.slice(at, at + size))
      const found = yield* referenceHits(decodeNar(Stream.fromIterable(chunks)), hash)
      assert.deepStrictEqual(found.hits.map((x) => [x.file, x.kind, x.offset]), [
        ["/bin/tool", "regular", "#!/bin/sh\nexec /nix/store/".length],
        ["/data", "regular", 70_000 + "/nix/store/".length],
        ["/link", "symlink", "/nix/store/".length]
      ], `chunks of ${size}`)
      assert.include(found.hits[0]!.snippet, `exec /nix/store/${hash}-dep/bin/x.`)
    }
  }))
})

const storeDir = "/nix/store"
const setup = Effect.gen(function*() {
  const store = MemoryStore.make()
  const plan = planClosure(200, 7)
  const v1 = yield* writeClosure(store.write, storeDir, plan)
  const v2 = yield* writeClosure(store.write, storeDir, plan, { change: [150], drop: 199, addUnder: 3 })
  // a build log for the root, as a build of its deriver would leave it
  const drv = `${storeDir}/${"d".repeat(32)}-app.drv`
  yield* Effect.scoped(Effect.map(store.buildHost.openLog(drv), (sink) => sink.write(new TextEncoder().encode("building app\ndone\n"))))
  const nar = yield* Effect.fromResult(Tree.toNar(Tree.regular(`uses ${v1[0]}\n`)))
  const app = StorePath.makeOutput("out", Hash.hashBytes("sha256", "the app derivation"), "app")
  yield* store.write.addToStore({
    path: app, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, signatures: [],
    references: [yield* Effect.fromResult(StorePath.parse(v1[0]!))], deriver: yield* Effect.fromResult(StorePath.parse(drv))
  }, Stream.make(nar))
  const handle = yield* makeUiHandler({ assetsDir: "/nonexistent", roots: [v1[0]!] }).pipe(Effect.provideContext(MemoryStore.context(store)))
  const get = (url: string) => Effect.map(handle({ method: "GET", url }), (r) => ({ status: r.status, body: JSON.parse(String(r.body)) }))
  return { store, plan, v1: v1 as Array<string>, v2: v2 as Array<string>, get, handle, drv, app: StorePath.print(app) }
})

describe("endpoints", () => {
  it.effect("search, path info, closure, why, hits, files, diff and log", () => Effect.gen(function*() {
    const { v1, v2, get, handle, app, drv } = yield* setup
    const root = v1[0]!
    const base = root.slice(storeDir.length + 1)

    const info = yield* get("/api/info")
    assert.strictEqual(info.body.storeDir, storeDir)
    assert.deepStrictEqual(info.body.roots.map((r: { path: string }) => r.path), [root])
    assert.isTrue(info.body.capabilities.listPaths)

    const name = v1[57]!.slice(storeDir.length + 34)
    const search = yield* get(`/api/search?q=${encodeURIComponent(name)}`)
    assert.include(search.body.results, v1[57])
    const byHash = yield* get(`/api/search?q=${v1[57]!.slice(11, 43)}`)
    assert.deepStrictEqual(byHash.body.results, [v1[57]])

    const path = yield* get(`/api/path?path=${encodeURIComponent(root)}`)
    assert.strictEqual(path.status, 200)
    assert.strictEqual(path.body.path, root)
    assert.deepStrictEqual(path.body.referrers, [app])

    const closure = yield* get(`/api/closure?path=${base}`)
    assert.strictEqual(closure.body.paths.length, new Set(v1.filter((p) => p !== undefined)).size)
    assert.strictEqual(closure.body.paths[0], base)
    assert.strictEqual(closure.body.closureSize, (closure.body.narSize as Array<number>).reduce((a, b) => a + b, 0))
    assert.strictEqual(closure.body.added[0], closure.body.closureSize)

    const target = v1[150]!
    const why = yield* get(`/api/why?from=${base}&to=${encodeURIComponent(target)}`)
    assert.isTrue(why.body.depends)
    const chain = (why.body.chain as Array<{ path: string }>).map((e) => e.path)
    assert.strictEqual(chain[0], root)
    assert.strictEqual(chain[chain.length - 1], target)
    for (let k = 0; k + 1 < chain.length; k++) {
      const hop = yield* get(`/api/hits?path=${encodeURIComponent(chain[k]!)}&ref=${encodeURIComponent(chain[k + 1]!)}`)
      assert.isAbove(hop.body.total, 0)
      assert.strictEqual(hop.body.hits[0].file, "")
      assert.include(hop.body.hits[0].snippet, chain[k + 1]!.slice(11, 43))
    }
    const notDep = yield* get(`/api/why?from=${encodeURIComponent(target)}&to=${base}`)
    assert.isFalse(notDep.body.depends)

    const ls = yield* get(`/api/ls?path=${base}`)
    assert.strictEqual(ls.body.node.type, "regular")
    const file = yield* get(`/api/file?path=${base}`)
    assert.isTrue(file.body.text.startsWith(root.slice(storeDir.length + 34)))

    const diff = yield* get(`/api/diff?from=${base}&to=${encodeURIComponent(v2[0]!)}`)
    const changedNames = (diff.body.changed as Array<{ to: { path: string } }>).map((c) => c.to.path.slice(storeDir.length + 34))
    assert.include(changedNames, v1[150]!.slice(storeDir.length + 34))
    assert.include(changedNames, v1[0]!.slice(storeDir.length + 34))
    assert.deepStrictEqual((diff.body.added as Array<{ path: string }>).map((e) => e.path.slice(storeDir.length + 34)), ["newlib-1.0"])
    assert.deepStrictEqual((diff.body.removed as Array<{ path: string }>).map((e) => e.path), [v1[199]])

    const log = yield* get(`/api/log?path=${encodeURIComponent(app)}`)
    assert.strictEqual(log.body.drv, drv)
    assert.strictEqual(log.body.text, "building app\ndone\n")
    assert.strictEqual((yield* get(`/api/path?path=${encodeURIComponent(app)}`)).body.log, drv)
    assert.strictEqual((yield* get(`/api/log?path=${base}`)).status, 404)

    const page = yield* handle({ method: "GET", url: "/" })
    assert.strictEqual(page.status, 503) // no assets in this test
  }))

  it.effect("answers only store paths, inside the store, read-only", () => Effect.gen(function*() {
    const { v1, get, handle } = yield* setup
    const base = v1[0]!.slice(storeDir.length + 1)
    for (const url of [
      "/api/path?path=/etc/passwd", "/api/path?path=..%2F..%2Fetc%2Fpasswd", "/api/path?path=", "/api/path",
      `/api/ls?path=${base}/../../etc`, `/api/file?path=${base}/./x`, `/api/path?path=${base}/sub`,
      "/api/search?q=%2Fetc", "/api/search?q=", "/api/why?from=x&to=y", "/api/closure?path=/nix/store/not-a-path"
    ]) {
      const r = yield* get(url)
      assert.strictEqual(r.status, 400, url)
      assert.isString(r.body.error)
    }
    assert.strictEqual((yield* get(`/api/path?path=${"a".repeat(32)}-missing`)).status, 404)
    assert.strictEqual((yield* get(`/api/ls?path=${base}/no/such`)).status, 404)
    assert.strictEqual((yield* get("/api/nothing")).status, 404)
    assert.strictEqual((yield* handle({ method: "POST", url: "/api/info" })).status, 405)
    assert.strictEqual((yield* handle({ method: "GET", url: "/assets/../../package.json" })).status, 404)
  }))

  it.live("searches a chunk store's paths by name through its index; without the index, the roots' closures", () => Effect.scoped(Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(Effect.sync(() => mkdtempSync(join(tmpdir(), "b3-ui-chunked-"))),
      (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true })))
    const plan = planClosure(60, 3)
    const written = yield* Effect.scoped(Effect.gen(function*() {
      const store = yield* openFileChunkStore(dir)
      return yield* writeClosure(store.write!, storeDir, plan)
    }))
    const name = written[41]!.slice(storeDir.length + 34)
    const searchIn = (readOnly: boolean, roots: Array<string>) => Effect.scoped(Effect.gen(function*() {
      const store = yield* openFileChunkStore(dir, { readOnly })
      const handle = yield* makeUiHandler({ assetsDir: "/nonexistent", roots }).pipe(Effect.provideContext(storeContext(store)))
      const get = (url: string) => Effect.map(handle({ method: "GET", url }), (r) => JSON.parse(String(r.body)))
      const info = yield* get("/api/info")
      if (roots.length > 0) yield* get(`/api/closure?path=${encodeURIComponent(roots[0]!)}`)
      return { listPaths: info.capabilities.listPaths as boolean, found: (yield* get(`/api/search?q=${encodeURIComponent(name)}`)).results as Array<string> }
    }))
    // with its index the store lists every path: no root needed
    const indexed = yield* searchIn(false, [])
    assert.isTrue(indexed.listPaths)
    assert.include(indexed.found, written[41])
    // read from its blobs alone it cannot list them: a root's closure, once looked at, is searched
    const blobsOnly = yield* searchIn(true, [])
    assert.isFalse(blobsOnly.listPaths)
    assert.notInclude(blobsOnly.found, written[41])
    assert.include((yield* searchIn(true, [written[0]!])).found, written[41])
  })))
})
