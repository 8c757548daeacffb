/**
 * `.narinfo` files of binary caches (Nix 2.8's `NarInfo`): parse and print.
 *
 *   StorePath: /nix/store/0aii…-det2
 *   URL: nar/0jl8….nar.xz
 *   Compression: xz
 *   FileHash: sha256:…
 *   FileSize: 7560
 *   NarHash: sha256:…
 *   NarSize: 7560
 *   References: 0aii…-det2 b8zz…-bb
 *   Deriver: 5g6v…-det2.drv
 *   Sig: b3test-1:Wat…==
 *   CA: fixed:r:sha256:…
 *
 * Parsing accepts fields in any order and ignores unknown ones (as Nix does), requires StorePath,
 * URL, NarHash and a non-zero NarSize, and checks every value's format. A missing Compression means
 * bzip2. Printing uses Nix's field order and always writes Compression and References; References
 * and Deriver are base names, signatures are printed sorted.
 */
import { Result, Schema } from "effect"
import * as ContentAddress from "./content-address.ts"
import { compareUtf8 } from "./derivation/utf8-order.ts"
import * as Hash from "./hash.ts"
import * as Signature from "./signature.ts"
import * as StorePath from "./store-path.ts"

export class InvalidNarInfo extends Schema.TaggedError<InvalidNarInfo>()("InvalidNarInfo", { input: Schema.String, reason: Schema.String }) {
  override get message() { return `invalid narinfo '${this.input}': ${this.reason}` }
}

export interface NarInfo {
  /** Full store path. */
  readonly storePath: string
  /** Where the (compressed) NAR is, relative to the cache. */
  readonly url: string
  readonly compression: string
  readonly fileHash?: Hash.Hash
  readonly fileSize?: number
  readonly narHash: Hash.Hash
  readonly narSize: number
  /** Base names (`<hash>-<name>`), as the file has them. */
  readonly references: ReadonlyArray<string>
  /** Base name of the deriver (`<hash>-<name>.drv`). */
  readonly deriver?: string
  readonly system?: string
  readonly sigs: ReadonlyArray<string>
  readonly ca?: ContentAddress.ContentAddress
}

export interface NarInfoOptions {
  readonly storeDir?: string
  /** What to call the input in error messages (file name or URL). */
  readonly source?: string
}

const sizeRe = /^[0-9]+$/
const once = new Set(["StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize", "References", "Deriver", "System", "CA"])

/** A narinfo is a few hundred bytes; one larger than this (16 MiB) is broken or hostile. */
export const maxNarInfoBytes = 16 << 20

export const parse = (text: string, options: NarInfoOptions = {}): Result.Result<NarInfo, InvalidNarInfo> => {
  const storeDir = options.storeDir ?? StorePath.defaultStoreDir
  const source = options.source ?? "<narinfo>"
  const fail = (reason: string) => Result.fail(new InvalidNarInfo({ input: source, reason }))
  if (text.length > 0 && !text.endsWith("\n")) return fail("the last line does not end with a newline")
  const fields = new Map<string, string>()
  const sigs: Array<string> = []
  const lines = text.split("\n")
  lines.pop()
  for (const [i, line] of lines.entries()) {
    const sep = line.indexOf(": ")
    const bare = line.endsWith(":") && !line.slice(0, -1).includes(":")
    if (sep <= 0 && !bare) return fail(`line ${i + 1} is not '<Field>: <value>'`)
    const name = sep > 0 ? line.slice(0, sep) : line.slice(0, -1)
    const value = sep > 0 ? line.slice(sep + 2) : ""
    if (name === "Sig") { sigs.push(value); continue }
    if (once.has(name) && fields.has(name)) return fail(`field '${name}' appears twice`)
    fields.set(name, value)
  }
  const size = (name: string): Result.Result<number | undefined, InvalidNarInfo> => {
    const v = fields.get(name)
    if (v === undefined) return Result.succeed(undefined)
    if (!sizeRe.test(v) || !Number.isSafeInteger(Number(v))) return fail(`${name} '${v}' is not a size`)
    return Result.succeed(Number(v))
  }
  const hash = (name: string): Result.Result<Hash.Hash | undefined, InvalidNarInfo> => {
    const v = fields.get(name)
    if (v === undefined) return Result.succeed(undefined)
    return Result.mapError(Hash.parse(v), (e) => new InvalidNarInfo({ input: source, reason: `${name}: ${e.reason}` }))
  }
  return Result.gen(function*() {
    const storePath = fields.get("StorePath")
    if (storePath === undefined) return yield* fail("the StorePath field is missing")
    yield* Result.mapError(StorePath.parse(storePath, storeDir), (e) => new InvalidNarInfo({ input: source, reason: `StorePath: ${e.message}` }))
    const url = fields.get("URL") ?? ""
    if (url === "") return yield* fail("the URL field is missing or empty")
    const narHash = yield* hash("NarHash")
    if (narHash === undefined) return yield* fail("the NarHash field is missing")
    const narSize = yield* size("NarSize")
    if (narSize === undefined || narSize === 0) return yield* fail("the NarSize field is missing or zero")
    const fileHash = yield* hash("FileHash")
    const fileSize = yield* size("FileSize")
    const references = (fields.get("References") ?? "").split(" ").filter((r) => r !== "")
    for (const ref of references) {
      yield* Result.mapError(StorePath.parseBaseName(ref), (e) => new InvalidNarInfo({ input: source, reason: `References: ${e.message}` }))
    }
    const deriverField = fields.get("Deriver")
    const deriver = deriverField === "unknown-deriver" ? undefined : deriverField
    if (deriver !== undefined) {
      yield* Result.mapError(StorePath.parseBaseName(deriver), (e) => new InvalidNarInfo({ input: source, reason: `Deriver: ${e.message}` }))
    }
    const caField = fields.get("CA") ?? ""
    const ca = caField === "" ? undefined
      : yield* Result.mapError(ContentAddress.parse(caField), (e) => new InvalidNarInfo({ input: source, reason: `CA: ${e.message}` }))
    const compression = fields.get("Compression") || "bzip2"
    const system = fields.get("System")
    return {
      storePath, url, compression, narHash, narSize, references, sigs,
      ...(fileHash !== undefined ? { fileHash } : {}),
      ...(fileSize !== undefined ? { fileSize } : {}),
      ...(deriver !== undefined ? { deriver } : {}),
      ...(system !== undefined && system !== "" ? { system } : {}),
      ...(ca !== undefined ? { ca } : {})
    }
  })
}

export const print = (info: NarInfo): string => {
  let out = `StorePath: ${info.storePath}\nURL: ${info.url}\nCompression: ${info.compression}\n`
  if (info.fileHash !== undefined) out += `FileHash: ${Hash.print(info.fileHash, "base32")}\n`
  if (info.fileSize !== undefined) out += `FileSize: ${info.fileSize}\n`
  out += `NarHash: ${Hash.print(info.narHash, "base32")}\nNarSize: ${info.narSize}\n`
  out += `References: ${[...new Set(info.references)].sort().join(" ")}\n`
  if (info.deriver !== undefined) out += `Deriver: ${info.deriver}\n`
  if (info.system !== undefined) out += `System: ${info.system}\n`
  for (const sig of [...new Set(info.sigs)].sort(compareUtf8)) out += `Sig: ${sig}\n`
  if (info.ca !== undefined) out += `CA: ${ContentAddress.print(info.ca)}\n`
  return out
}

/** The full store paths of the references. */
export const referencePaths = (info: NarInfo, storeDir: string = StorePath.defaultStoreDir): Array<string> =>
  info.references.map((r) => `${storeDir}/${r}`)

/** The string a signature of this path signs. */
export const fingerprint = (info: NarInfo, storeDir: string = StorePath.defaultStoreDir): string =>
  Signature.fingerprint({ storePath: info.storePath, narHash: info.narHash, narSize: info.narSize, references: referencePaths(info, storeDir) })

/** Adds a signature by `key` (replacing an earlier one by the same key name). */
export const sign = (info: NarInfo, key: Signature.SecretKey, storeDir: string = StorePath.defaultStoreDir): NarInfo => {
  const sig = Signature.signDetached(key, fingerprint(info, storeDir))
  return { ...info, sigs: [...info.sigs.filter((s) => !s.startsWith(`${key.name}:`)), sig] }
}

/**
 * The name of a trusted key that signed this narinfo, or a SignatureError: no signature by a
 * trusted key, or signatures by trusted keys that do not match the contents (tampering).
 */
export const verify = (
  info: NarInfo,
  trusted: ReadonlyArray<Signature.PublicKey>,
  storeDir: string = StorePath.defaultStoreDir
): Result.Result<string, Signature.SignatureError> => {
  const data = fingerprint(info, storeDir)
  for (const sig of info.sigs) {
    const signer = Signature.verifyDetached(data, sig, trusted)
    if (signer !== undefined) return Result.succeed(signer)
  }
  const keyName = (sig: string) => sig.slice(0, Math.max(0, sig.indexOf(":")))
  const names = new Set(trusted.map((k) => k.name))
  const byTrusted = [...new Set(info.sigs.map(keyName).filter((n) => names.has(n)))]
  return Result.fail(new Signature.SignatureError({
    path: info.storePath,
    reason: info.sigs.length === 0 ? "the narinfo has no signatures"
      : byTrusted.length === 0 ? `no signature by a trusted key (signed by: ${info.sigs.map(keyName).join(", ")})`
      : `the signature by '${byTrusted.join("', '")}' does not match the narinfo's contents`
  }))
}

/**
 * Whether the path is content-addressed as its CA field claims (then Nix accepts it without
 * signatures): the path computed from CA, name and references is the path itself.
 */
export const isContentAddressed = (info: NarInfo, storeDir: string = StorePath.defaultStoreDir): boolean => {
  if (info.ca === undefined) return false
  const self = StorePath.parse(info.storePath, storeDir)
  if (Result.isFailure(self)) return false
  const selfBase = StorePath.baseName(self.success)
  const refs = info.references.filter((r) => r !== selfBase).map((r) => StorePath.parseBaseName(r)).filter(Result.isSuccess).map((r) => r.success)
  const computed = ContentAddress.storePath(info.ca, self.success.name, { references: refs, hasSelfReference: refs.length !== info.references.length, storeDir })
  return StorePath.equals(computed, self.success)
}
