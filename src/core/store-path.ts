/**
 * Store paths: `<storeDir>/<32 nix-base32 chars>-<name>`, and how Nix computes them from a
 * fingerprint `<type>:sha256:<base16 inner hash>:<storeDir>:<name>`.
 */
import { Result } from "effect"
import { InvalidStorePath } from "./errors.ts"
import * as Hash from "./hash.ts"
import * as NixBase32 from "./nixbase32.ts"

export const defaultStoreDir = "/nix/store"
export const hashPartLength = 32
/** Nix's limit on the name part of a store path. */
export const maxNameLength = 211

export interface StorePath {
  readonly hashPart: string
  readonly name: string
}

const nameCharRe = /^[A-Za-z0-9+\-._?=]*$/
/** Whether a char code may appear in a name (a table: cheaper than the regex for every path a daemon is sent). */
const nameChar = new Uint8Array(128)
for (let c = 0; c < 128; c++) nameChar[c] = nameCharRe.test(String.fromCharCode(c)) ? 1 : 0
const isName = (name: string): boolean => {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c >= 128 || nameChar[c] === 0) return false
  }
  return true
}

const fail = (input: string, reason: string) => Result.fail(new InvalidStorePath({ input, reason }))

/**
 * Checks a store path name as Nix 2.8's `checkName` does: non-empty, at most 211 characters, each
 * one of A-Z a-z 0-9 + - . _ ? = (so `.gitignore`, `...` and even `.` are names).
 */
export const validateName = (name: string, input: string = name): Result.Result<string, InvalidStorePath> => {
  if (name.length === 0) return fail(input, "the name is empty")
  if (name.length > maxNameLength) return fail(input, `the name is longer than ${maxNameLength} characters`)
  if (!isName(name)) {
    const bad = [...name].find((c) => !nameCharRe.test(c))
    return fail(input, `the name contains the illegal character '${bad}' (allowed: A-Z a-z 0-9 + - . _ ? =)`)
  }
  return Result.succeed(name)
}

/** Checks a store dir: absolute, canonical (no trailing slash, no `.`/`..`/empty components). */
export const validateStoreDir = (dir: string): Result.Result<string, InvalidStorePath> => {
  if (!dir.startsWith("/")) return fail(dir, "the store directory must be an absolute path")
  if (dir === "/") return fail(dir, "the store directory cannot be '/'")
  const parts = dir.slice(1).split("/")
  if (parts.some((p) => p === "" || p === "." || p === "..")) {
    return fail(dir, "the store directory must be canonical (no trailing '/', '//', '.' or '..')")
  }
  if (dir.includes("\0")) return fail(dir, "the store directory contains a NUL byte")
  return Result.succeed(dir)
}

/** Parses `<hash>-<name>`, the base name of a store path. */
export const parseBaseName = (baseName: string, input: string = baseName): Result.Result<StorePath, InvalidStorePath> => {
  if (baseName.length < hashPartLength + 2 || baseName[hashPartLength] !== "-") {
    return fail(input, `expected '<${hashPartLength} nix-base32 characters>-<name>'`)
  }
  const hashPart = baseName.slice(0, hashPartLength)
  if (!NixBase32.isNixBase32(hashPart)) return fail(input, "the hash part is not nix-base32")
  // (plain code, not Result.map: a daemon parses every path it is sent)
  const name = validateName(baseName.slice(hashPartLength + 1), input)
  return Result.isFailure(name) ? Result.fail(name.failure) : Result.succeed({ hashPart, name: name.success })
}

/** Parses a full path `<storeDir>/<hash>-<name>`; the path must lie directly in `storeDir`. */
export const parse = (path: string, storeDir: string = defaultStoreDir): Result.Result<StorePath, InvalidStorePath> => {
  const prefix = storeDir + "/"
  if (!path.startsWith(prefix)) return fail(path, `the path is not in the store directory ${storeDir}`)
  const rest = path.slice(prefix.length)
  if (rest.includes("/")) return fail(path, "the path is not directly inside the store directory")
  return parseBaseName(rest, path)
}

export const baseName = (path: StorePath): string => `${path.hashPart}-${path.name}`

export const print = (path: StorePath, storeDir: string = defaultStoreDir): string => `${storeDir}/${baseName(path)}`

export const equals = (a: StorePath, b: StorePath): boolean => a.hashPart === b.hashPart && a.name === b.name

/** Orders store paths as Nix's StorePathSet does: by base name, bytewise. */
export const compare = (a: StorePath, b: StorePath): number => {
  const x = baseName(a)
  const y = baseName(b)
  return x < y ? -1 : x > y ? 1 : 0
}

/** A set of store paths as Nix keeps one (`StorePathSet`): sorted by base name, each path once. */
export const uniqueSorted = (paths: Iterable<StorePath>): Array<StorePath> => {
  const sorted = [...paths].sort(compare)
  return sorted.filter((p, i) => i === 0 || !equals(p, sorted[i - 1]!))
}

// ---------------------------------------------------------------------------------------------
// Computing store paths

/**
 * `makeStorePath`: the path whose hash part is the nix-base32 of the 20-byte XOR-fold of
 * sha256(`<type>:sha256:<base16 inner>:<storeDir>:<name>`).
 */
export const make = (type: string, inner: Hash.Hash, name: string, storeDir: string = defaultStoreDir): StorePath => {
  const fingerprint = `${type}:sha256:${Hash.toBase16String(inner)}:${storeDir}:${name}`
  const digest = Hash.hashBytes("sha256", fingerprint).bytes
  return { hashPart: NixBase32.encode(Hash.compress(digest, 20)), name }
}

/**
 * The type string with references: `<type>:<ref path>…[:self]`. References are a set, as in Nix
 * (`StorePathSet`): sorted, and a path listed twice counts once.
 */
export const makeType = (
  type: string,
  references: ReadonlyArray<StorePath>,
  hasSelfReference: boolean,
  storeDir: string = defaultStoreDir
): string => {
  let out = type
  for (const ref of uniqueSorted(references)) out += `:${print(ref, storeDir)}`
  if (hasSelfReference) out += ":self"
  return out
}

/** `builtins.toFile` / `addTextToStore`: type `text` plus its references, hash = sha256 of the contents. */
export const makeText = (
  name: string,
  contentHash: Hash.Hash,
  references: ReadonlyArray<StorePath> = [],
  storeDir: string = defaultStoreDir
): StorePath => make(makeType("text", references, false, storeDir), contentHash, name, storeDir)

export type FileIngestionMethod = "flat" | "recursive"

/**
 * Fixed-output paths: recursive sha256 is a `source` path (which may have references);
 * anything else is `output:out` over `fixed:out:<r:?><algo>:<base16>:` and has none.
 */
export const makeFixedOutput = (
  method: FileIngestionMethod,
  hash: Hash.Hash,
  name: string,
  options: { readonly references?: ReadonlyArray<StorePath>; readonly hasSelfReference?: boolean; readonly storeDir?: string } = {}
): StorePath => {
  const storeDir = options.storeDir ?? defaultStoreDir
  if (method === "recursive" && hash.algorithm === "sha256") {
    return make(makeType("source", options.references ?? [], options.hasSelfReference ?? false, storeDir), hash, name, storeDir)
  }
  const inner = Hash.hashBytes("sha256", `fixed:out:${method === "recursive" ? "r:" : ""}${Hash.print(hash, "base16")}:`)
  return make("output:out", inner, name, storeDir)
}

/** The name of a derivation output's path: the derivation name, plus `-<output>` unless it is `out`. */
export const outputPathName = (drvName: string, outputName: string): string =>
  outputName === "out" ? drvName : `${drvName}-${outputName}`

/** Output path of an input-addressed derivation: type `output:<name>` over hashDerivationModulo. */
export const makeOutput = (outputName: string, drvHash: Hash.Hash, drvName: string, storeDir: string = defaultStoreDir): StorePath =>
  make(`output:${outputName}`, drvHash, outputPathName(drvName, outputName), storeDir)
