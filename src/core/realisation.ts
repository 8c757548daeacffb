/**
 * Realisations (Nix 2.8, `ca-derivations`): which store path a derivation output was built (or
 * substituted) as, for outputs whose path is not known in advance.
 *
 * - A derivation output is named by `DrvOutput` = `sha256:<base16 hashDerivationModulo>!<output>`
 *   (the masked hash the derivation's output paths would be made from, "static output hash").
 * - A realisation maps it to an output path (a base name in JSON), lists the realisations of the
 *   inputs its output refers to (`dependentRealisations`) and carries signatures.
 * - Its JSON form is what binary caches keep in `realisations/<DrvOutput>.doi`, printed as
 *   nlohmann::json's `dump()` prints it (compact, keys sorted); the signed fingerprint is the same
 *   JSON without `signatures`.
 */
import { Result, Schema } from "effect"
import * as Hash from "./hash.ts"
import * as Json from "./derivation/json-value.ts"
import * as Signature from "./signature.ts"
import * as StorePath from "./store-path.ts"

export class InvalidRealisation extends Schema.TaggedError<InvalidRealisation>()("InvalidRealisation", { input: Schema.String, reason: Schema.String }) {
  override get message() { return `invalid realisation '${this.input}': ${this.reason}` }
}

export interface DrvOutput {
  readonly drvHash: Hash.Hash
  readonly outputName: string
}

export interface Realisation {
  readonly id: DrvOutput
  readonly outPath: StorePath.StorePath
  /** Sorted, unique (Nix's StringSet). */
  readonly signatures: ReadonlyArray<string>
  /** The realisations this one's output refers to: DrvOutput (printed) → output path. */
  readonly dependentRealisations: ReadonlyMap<string, StorePath.StorePath>
}

/** `sha256:<base16>!<output>` */
export const printDrvOutput = (id: DrvOutput): string => `${Hash.print(id.drvHash, "base16")}!${id.outputName}`

export const parseDrvOutput = (input: string): Result.Result<DrvOutput, InvalidRealisation> => {
  const bang = input.indexOf("!")
  if (bang < 0) return Result.fail(new InvalidRealisation({ input, reason: "a derivation output id is '<hash>!<output name>'" }))
  return Result.mapBoth(Hash.parse(input.slice(0, bang)), {
    onFailure: (e) => new InvalidRealisation({ input, reason: e.message }),
    onSuccess: (drvHash) => ({ drvHash, outputName: input.slice(bang + 1) })
  })
}

export const make = (
  id: DrvOutput,
  outPath: StorePath.StorePath,
  options: { readonly signatures?: Iterable<string>; readonly dependentRealisations?: ReadonlyMap<string, StorePath.StorePath> } = {}
): Realisation => ({
  id,
  outPath,
  signatures: [...new Set(options.signatures ?? [])].sort(),
  dependentRealisations: new Map([...(options.dependentRealisations ?? new Map())].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
})

const toJsonValue = (r: Realisation, withSignatures: boolean): Json.JsonValue => {
  const deps = new Map<string, Json.JsonValue>([...r.dependentRealisations].map(([id, p]) => [id, StorePath.baseName(p)]))
  const out = new Map<string, Json.JsonValue>([
    ["dependentRealisations", deps],
    ["id", printDrvOutput(r.id)],
    ["outPath", StorePath.baseName(r.outPath)]
  ])
  if (withSignatures) out.set("signatures", [...r.signatures])
  return out
}

/**
 * Why a store that has `old` must refuse `r` for the same id (Nix's `isCompatibleWith`: the same
 * output path, and the same dependencies unless one side has none), or undefined if it may take it.
 */
export const conflict = (old: Realisation | undefined, r: Realisation, print: (p: StorePath.StorePath) => string): string | undefined => {
  if (old === undefined) return undefined
  const same = StorePath.equals(old.outPath, r.outPath) && (
    (old.dependentRealisations.size === 0) !== (r.dependentRealisations.size === 0) ||
    (old.dependentRealisations.size === r.dependentRealisations.size &&
      [...old.dependentRealisations].every(([k, p]) => { const q = r.dependentRealisations.get(k); return q !== undefined && StorePath.equals(p, q) })))
  return same ? undefined
    : `trying to register a realisation of '${printDrvOutput(r.id)}', but there is already another one: ${print(old.outPath)} (registered) vs ${print(r.outPath)}`
}

/** The `.doi` JSON, byte for byte as Nix 2.8 writes it. */
export const print = (r: Realisation): string => Json.printNlohmann(toJsonValue(r, true))

/** What a signature of a realisation signs. */
export const fingerprint = (r: Realisation): string => Json.printNlohmann(toJsonValue(r, false))

export const sign = (r: Realisation, key: Signature.SecretKey): Realisation =>
  ({ ...r, signatures: [...new Set([...r.signatures, Signature.signDetached(key, fingerprint(r))])].sort() })

/** The names of the trusted keys that signed it validly. */
export const validSignatures = (r: Realisation, trusted: ReadonlyArray<Signature.PublicKey>): ReadonlyArray<string> =>
  r.signatures.flatMap((sig) => {
    const by = Signature.verifyDetached(fingerprint(r), sig, trusted)
    return by === undefined ? [] : [by]
  })

/** Reads a `.doi` file (Nix's `Realisation::fromJSON`: `signatures` and `dependentRealisations` optional). */
export const parse = (text: string, source = "<realisation>"): Result.Result<Realisation, InvalidRealisation> => {
  const fail = (reason: string) => Result.fail(new InvalidRealisation({ input: source, reason }))
  const parsed = Json.parse(text)
  if (Result.isFailure(parsed)) return fail(`not JSON: ${parsed.failure.reason} at ${parsed.failure.offset}`)
  const v = parsed.success
  if (!Json.isObject(v)) return fail("expected a JSON object")
  const idText = v.get("id")
  const outText = v.get("outPath")
  if (typeof idText !== "string") return fail("missing field id")
  if (typeof outText !== "string") return fail("missing field outPath")
  return Result.gen(function*() {
    const id = yield* parseDrvOutput(idText)
    const outPath = yield* Result.mapError(StorePath.parseBaseName(outText), (e) => new InvalidRealisation({ input: source, reason: e.message }))
    const signatures: Array<string> = []
    const sigs = v.get("signatures")
    if (sigs !== undefined) {
      if (!Json.isArray(sigs) || sigs.some((s) => typeof s !== "string")) return yield* fail("signatures must be a list of strings")
      signatures.push(...(sigs as ReadonlyArray<string>))
    }
    const deps = new Map<string, StorePath.StorePath>()
    const depsJson = v.get("dependentRealisations")
    if (depsJson !== undefined) {
      if (!Json.isObject(depsJson)) return yield* fail("dependentRealisations must be an object")
      for (const [k, p] of depsJson) {
        const depId = yield* parseDrvOutput(k)
        if (typeof p !== "string") return yield* fail(`dependentRealisations.${k} must be a string`)
        const path = yield* Result.mapError(StorePath.parseBaseName(p), (e) => new InvalidRealisation({ input: source, reason: e.message }))
        deps.set(printDrvOutput(depId), path)
      }
    }
    return make(id, outPath, { signatures, dependentRealisations: deps })
  })
}
