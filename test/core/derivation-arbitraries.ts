/** fast-check generators for derivations, shared by the derivation tests. */
import fc from "fast-check"
import * as Hash from "../../src/core/hash.ts"
import * as StorePath from "../../src/core/store-path.ts"
import * as Drv from "../../src/core/derivation/index.ts"

const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?="
export const arbName = fc.tuple(fc.constantFrom(...nameChars.replace(".", "")), fc.string({ unit: fc.constantFrom(...nameChars), maxLength: 30 }))
  .map(([a, b]) => a + b)

export const arbStorePath = (storeDir = StorePath.defaultStoreDir, suffix = "") =>
  fc.tuple(fc.uint8Array({ minLength: 20, maxLength: 20 }), arbName)
    .map(([digest, name]) => StorePath.print({ hashPart: Hash.encode(Hash.make("sha1", digest), "base32"), name: name + suffix }, storeDir))

/**
 * Any Unicode text without NUL, biased towards the characters the format escapes, plus bytes that
 * are not UTF-8 (kept as U+DC80–U+DCFF; only ones that cannot combine into a UTF-8 sequence, so
 * every generated string is what decoding its bytes gives back).
 */
export const arbText = fc.string({
  unit: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("\"", "\\", "\n", "\t", "\r", "$", "{", "é", "😀", "\u0001", "\u007f", "\uffff", "a", " ", "\udcff", "\udcfe", "\udc80", "\udcbf") },
    { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) }
  ),
  maxLength: 30
}).map((s) => s.replaceAll("\0", ""))

/** Strings the ATerm format prints unquoted (output names, system): no `"` or `\`. */
export const arbPlain = fc.string({ unit: fc.constantFrom(..."abcxyz-_0129é😀 .:/"), minLength: 1, maxLength: 12 })

const arbAlgorithm = fc.constantFrom(...Hash.hashAlgorithms)
const arbMethod = fc.constantFrom("flat" as const, "recursive" as const)
const arbHash = arbAlgorithm.chain((a) => fc.uint8Array({ minLength: Hash.digestSize[a], maxLength: Hash.digestSize[a] }).map((b) => Hash.make(a, b)))

export const arbOutput: fc.Arbitrary<Drv.DerivationOutput> = fc.oneof(
  arbStorePath().map(Drv.inputAddressed),
  fc.tuple(arbStorePath(), arbMethod, arbHash).map(([p, m, h]) => Drv.fixed(p, m, h)),
  fc.tuple(arbMethod, arbAlgorithm).map(([m, a]) => Drv.floating(m, a)),
  fc.constant(Drv.deferred),
  fc.tuple(arbMethod, arbAlgorithm).map(([m, a]) => Drv.impure(m, a))
)

const sortedSet = (xs: ReadonlyArray<string>) => [...new Set(xs)].sort()

/** A derivation as the printer normalises it: sets sorted and unique. */
export const arbDerivation: fc.Arbitrary<Drv.Derivation> = fc.record({
  name: arbName,
  outputs: fc.uniqueArray(fc.tuple(arbPlain, arbOutput), { minLength: 1, maxLength: 4, selector: ([n]) => n }).map((xs) => new Map(xs)),
  inputDrvs: fc.uniqueArray(fc.tuple(arbStorePath(StorePath.defaultStoreDir, ".drv"), fc.array(arbPlain, { maxLength: 3 })), { maxLength: 4, selector: ([p]) => p })
    .map((xs) => new Map(xs.map(([p, names]) => [p, sortedSet(names)]))),
  inputSrcs: fc.array(arbStorePath(), { maxLength: 4 }).map(sortedSet),
  system: arbPlain,
  builder: arbText,
  args: fc.array(arbText, { maxLength: 5 }),
  env: fc.uniqueArray(fc.tuple(arbText, arbText), { maxLength: 8, selector: ([k]) => k }).map((xs) => new Map(xs))
})
