/**
 * A small closure for copy tests, over a path already in a local store: an input-addressed path
 * (like a build output: no content address, so copying it needs a signature) that refers to a
 * text path, which refers to the given path. Plus a Nix signing key pair for the cache.
 */
import { Effect, Stream } from "effect"
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as LocalStore from "../../src/layers/local/local-store.ts"
import * as Tree from "../../src/nar/tree.ts"
import { b3 } from "./b3.ts"
import { nix } from "./nix.ts"

export interface TestClosure {
  /** The input-addressed path at the top. */
  readonly top: string
  /** All three paths, sorted. */
  readonly all: Array<string>
}

export const addClosureOver = (root: string, base: string, label: string): Promise<TestClosure> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const store = yield* LocalStore.make({ root })
    const dep = yield* Effect.fromResult(StorePath.parse(base))
    const text = yield* store.write.addText(`uses-${label}`, `uses ${base}`, [dep])
    const output = StorePath.makeOutput("out", Hash.hashBytes("sha256", `a ${label} test derivation`), "output")
    const nar = yield* Effect.fromResult(Tree.toNar(Tree.directory({ run: Tree.regular(`${StorePath.print(text.path)}\n`, true) })))
    yield* store.write.addToStore({ path: output, narHash: Hash.hashBytes("sha256", nar), narSize: nar.length, references: [text.path], signatures: [] }, Stream.make(nar))
    const top = StorePath.print(output)
    return { top, all: [base, StorePath.print(text.path), top].sort() }
  })))

/** A binary-cache key pair made by Nix: the secret key file and the public key text. */
export const makeCacheKey = (dir: string, name: string): { secretKeyFile: string; publicKey: string } => {
  const secretKeyFile = join(dir, `${name}.sk`)
  nix("nix-store", ["--generate-binary-cache-key", name, secretKeyFile, join(dir, `${name}.pk`)])
  return { secretKeyFile, publicKey: readFileSync(join(dir, `${name}.pk`), "utf8").trim() }
}

/** A small tree with an executable, a 300 kB file and a symlink, written at `dir`; returns `dir`. */
export const writeToolTree = (dir: string): string => {
  mkdirSync(join(dir, "bin"), { recursive: true })
  writeFileSync(join(dir, "bin/tool"), "#!/bin/sh\necho tool\n")
  chmodSync(join(dir, "bin/tool"), 0o755)
  writeFileSync(join(dir, "data"), Buffer.alloc(300_000, 42))
  symlinkSync("bin/tool", join(dir, "link"))
  return dir
}

/**
 * The usual fixture of the cache tests: a signing key in `scratch`, and a closure over the tool
 * tree added to the local store `source`.
 */
export const signedToolClosure = async (scratch: string, source: string, keyName: string): Promise<{ closure: TestClosure; sk: string; pk: string }> => {
  const key = makeCacheKey(scratch, keyName)
  const closure = await addClosureOver(source, b3(["store", "add", "--store", source, writeToolTree(join(scratch, "tree"))]), "tree")
  return { closure, sk: key.secretKeyFile, pk: key.publicKey }
}
