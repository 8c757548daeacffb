/** The NAR format, pure: events, the strict streaming decoder and encoder, the one-pass checker, in-memory trees, listings, references and rewriting. */
export * from "./errors.ts"
export * as NarEvents from "./events.ts"
export { NarDecoder, decodeNar, decodeNarBytes } from "./decode.ts"
export { NarEncoder, encodeNar, encodeNarBytes } from "./encode.ts"
export * as Tree from "./tree.ts"
export {
  NarChecker, checkNar, checkNarBytes, checkedNar, expectNar, isCheckedNar, narBytes, narEvents,
  type CheckedNar, type ContentMethod, type NarCheckError, type NarCheckOptions, type NarCheckResult, type NarExpectation, type NarPlan, type NarRoot
} from "./check.ts"
export { ReferenceScanner, scanReferences } from "./references.ts"
export { HashRewriter, rewriteBytes, rewriteHashParts } from "./rewrite.ts"
export {
  ListingBuilder, findNode, listingFile, listingJson, listingOfEvents, narListing,
  type ListingDirectory, type ListingNode, type ListingRegular, type ListingSymlink
} from "./listing.ts"
