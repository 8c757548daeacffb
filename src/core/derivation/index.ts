/**
 * Derivations: the `.drv` ATerm format (parse/print), the `nix show-derivation` JSON form,
 * `hashDerivationModulo` and output paths, structured attributes, and a typed API to declare
 * derivations as Nix's `derivation` builtin does. Everything here is pure.
 */
export * from "./types.ts"
export { parse, type ParseOptions } from "./aterm-parse.ts"
export { print, quote, type PrintOptions } from "./aterm-print.ts"
export { toJson, printShowDerivation, parseShowDerivation } from "./json.ts"
export { hashDerivationModulo, type DrvHash, type HashModuloOptions, type HashModuloError } from "./hash-modulo.ts"
export { derivationType, fixedOutputPath, type DerivationType } from "./derivation-type.ts"
export { computeOutputPaths, checkOutputs } from "./outputs.ts"
export { hashPlaceholder, downstreamPlaceholder } from "./placeholders.ts"
export { structuredAttrsFiles, attrsShell, shellEscape, type StructuredAttrsFiles, type StructuredAttrsOptions } from "./structured-attrs.ts"
export {
  derivation, fromDerivation, drvFileClosure, drvPath, float, storePath, str, type DrvFile, type DrvPathRef,
  type BuiltDerivation, type DerivationAttrs, type DerivationOptions,
  type ContextString, type FloatValue, type OutputRef, type StorePathRef, type StringLike, type Value
} from "./builder-api.ts"
export { InvalidDerivation, InvalidDerivationArgs, MissingDerivation } from "./errors.ts"
