/**
 * `copyPaths`' trust policy, on in-memory stores: with signature checking on, a path must carry a
 * valid signature by a trusted key, or be content-addressed with contents that match its address.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Result, Stream } from "effect"
import * as ContentAddress from "../../src/core/content-address.ts"
import * as Hash from "../../src/core/hash.ts"
import * as Signature from "../../src/core/signature.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Tree from "../../src/nar/tree.ts"
import * as MemoryStore from "../../src/layers/memory.ts"
import { copyPaths } from "../../src/services/copy.ts"
import { fingerprint, type PathInfo } from "../../src/core/path-info.ts"

const trusted = Signature.generateSecretKey("cache-1")
const stranger = Signature.generateSecretKey("stranger-1")
const storeDir = StorePath.defaultStoreDir

const narOf = (text: string) => Result.getOrThrow(Tree.toNar(Tree.regular(text)))

/** An input-addressed-looking path with the given contents, signed by `keys`. */
const inputAddressed = (name: string, text: string, keys: ReadonlyArray<Signature.SecretKey>) => {
  const nar = narOf(text)
  const path = StorePath.makeText(name, Hash.hashBytes("sha256", `not-content-${name}`), [], storeDir)
  const unsigned: PathInfo = { path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: [] }
  return { info: { ...unsigned, signatures: keys.map((k) => Signature.signDetached(k, fingerprint(unsigned, storeDir))) }, nar }
}

/** A text path, content-addressed, as `builtins.toFile` makes it. */
const contentAddressed = (name: string, text: string) => {
  const nar = narOf(text)
  const ca = ContentAddress.text(Hash.hashBytes("sha256", text))
  const path = ContentAddress.storePath(ca, name, { references: [], storeDir })
  const info: PathInfo = { path, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [], signatures: [], ca }
  return { info, nar }
}

/** A source holding the path exactly as given (no checks: it plays a hostile cache). */
const sourceWith = (item: { info: PathInfo; nar: Uint8Array }) => Effect.gen(function*() {
  const source = MemoryStore.make({ checkReferences: false })
  // add with the hash of the NAR it serves, so the in-memory store accepts it…
  yield* source.write.addToStore({ ...item.info, narHash: Hash.hashBytes("sha256", item.nar), narSize: item.nar.length }, Stream.make(item.nar))
  // …then make it claim what the test wants (a forged hash or address)
  const claimed = yield* source.read.queryPathInfo(item.info.path)
  return { ...source.read, queryPathInfo: () => Effect.succeed({ ...claimed, ...item.info }), narFromPath: () => Stream.make(item.nar) }
})

const copyInto = (item: { info: PathInfo; nar: Uint8Array }, options: { trusted?: boolean; checkSigs?: boolean } = {}) => Effect.gen(function*() {
  const source = yield* sourceWith(item)
  const target = MemoryStore.make()
  const result = yield* Effect.result(copyPaths(source, target, [item.info.path], {
    trustedKeys: options.trusted === false ? [] : [Signature.publicKeyOf(trusted)],
    ...(options.checkSigs === undefined ? {} : { checkSigs: options.checkSigs })
  }))
  return { result, valid: yield* target.read.isValidPath(item.info.path) }
})

describe("copyPaths trust policy", () => {
  it.effect("a path signed by a trusted key is copied", () => Effect.gen(function*() {
    const { result, valid } = yield* copyInto(inputAddressed("signed", "hello\n", [trusted]))
    expect(Result.isSuccess(result)).toBe(true)
    expect(valid).toBe(true)
  }))

  it.effect("an unsigned input-addressed path is refused, and nothing is added", () => Effect.gen(function*() {
    const { result, valid } = yield* copyInto(inputAddressed("unsigned", "hello\n", []))
    expect(Result.isFailure(result) && result.failure._tag).toBe("SignatureError")
    expect(valid).toBe(false)
  }))

  it.effect("a path signed only by an untrusted key is refused", () => Effect.gen(function*() {
    const { result, valid } = yield* copyInto(inputAddressed("stranger", "hello\n", [stranger]))
    expect(Result.isFailure(result) && result.failure._tag).toBe("SignatureError")
    expect(valid).toBe(false)
  }))

  it.effect("a trusted signature over a different NAR hash does not let other contents in", () => Effect.gen(function*() {
    const signed = inputAddressed("tampered", "hello\n", [trusted])
    const { result, valid } = yield* copyInto({ info: signed.info, nar: narOf("HELLO\n") })
    expect(Result.isFailure(result) && result.failure._tag).toBe("HashMismatch")
    expect(valid).toBe(false)
  }))

  it.effect("an unsigned content-addressed path whose contents match its address is copied", () => Effect.gen(function*() {
    const { result, valid } = yield* copyInto(contentAddressed("ca.txt", "by content\n"), { trusted: false })
    expect(Result.isSuccess(result)).toBe(true)
    expect(valid).toBe(true)
  }))

  it.effect("a forged content address (contents that do not hash to it, NAR hash consistent) is refused", () => Effect.gen(function*() {
    const claimed = contentAddressed("ca.txt", "by content\n")
    const forgedNar = narOf("something else\n")
    const forged = { info: { ...claimed.info, narHash: Hash.hashBytes("sha256", forgedNar), narSize: forgedNar.length }, nar: forgedNar }
    const { result, valid } = yield* copyInto(forged, { trusted: false })
    expect(Result.isFailure(result) && result.failure._tag).toBe("HashMismatch")
    expect(valid).toBe(false)
  }))

  it.effect("a content address that does not give the path is no address at all: unsigned, refused", () => Effect.gen(function*() {
    const claimed = contentAddressed("ca.txt", "by content\n")
    const elsewhere = { ...claimed.info, ca: ContentAddress.text(Hash.hashBytes("sha256", "other\n")) }
    const { result, valid } = yield* copyInto({ info: elsewhere, nar: claimed.nar }, { trusted: false })
    expect(Result.isFailure(result) && result.failure._tag).toBe("SignatureError")
    expect(valid).toBe(false)
  }))

  it.effect("with checking off, an unsigned path is copied (its NAR hash is still checked)", () => Effect.gen(function*() {
    const unsigned = inputAddressed("unchecked", "hello\n", [])
    const ok = yield* copyInto(unsigned, { checkSigs: false })
    expect(ok.valid).toBe(true)
    const bad = yield* copyInto({ info: unsigned.info, nar: narOf("HELLO\n") }, { checkSigs: false })
    expect(Result.isFailure(bad.result) && bad.result.failure._tag).toBe("HashMismatch")
    expect(bad.valid).toBe(false)
  }))
})

describe("copyPaths on a cache whose paths refer to each other in a cycle", () => {
  it.effect("fails with ReferenceCycle at once instead of waiting forever", () => Effect.gen(function*() {
    const a = inputAddressed("cycle-a", "a\n", [])
    const b = inputAddressed("cycle-b", "b\n", [])
    const source = MemoryStore.make({ checkReferences: false })
    for (const item of [a, b]) yield* source.write.addToStore(item.info, Stream.make(item.nar))
    const refs = new Map([[StorePath.baseName(a.info.path), [b.info.path]], [StorePath.baseName(b.info.path), [a.info.path]]])
    const cyclic = { ...source.read, queryPathInfo: (p: StorePath.StorePath) => Effect.map(source.read.queryPathInfo(p), (info) => ({ ...info, references: refs.get(StorePath.baseName(p))! })) }
    const target = MemoryStore.make()
    const error = yield* Effect.flip(copyPaths(cyclic, target, [a.info.path], { checkSigs: false }))
    expect(error._tag).toBe("ReferenceCycle")
    expect(error.message).toMatch(/^cycle detected in the references of '\/nix\/store\/.*-cycle-[ab]' from '\/nix\/store\/.*-cycle-[ab]'$/)
    expect(yield* target.read.queryValidPaths([a.info.path, b.info.path])).toEqual([])
  }))
})
