/** The NAR toolkit: events, strict streaming decoder and encoder, dumps, file-system dump and restore, digests, listings, references and rewriting. */
export * from "./errors.ts"
export * as NarEvents from "./events.ts"
export { NarDecoder, decodeNar, decodeNarBytes } from "./decode.ts"
export { NarEncoder, encodeNar, encodeNarBytes } from "./encode.ts"
export * as Dump from "./dump.ts"
export { narFromPath, narDigestOfPath, forEachNarChunk, type DumpOptions } from "./from-path.ts"
export { narHashAndSize, narHashSink, tapHash, type NarDigest } from "./digest.ts"
export { restoreNar, restoreNarFromFd } from "./restore.ts"
export { ReferenceScanner, scanReferences } from "./references.ts"
export { HashRewriter, rewriteBytes, rewriteHashParts } from "./rewrite.ts"
export {
  ListingBuilder, findNode, listingFile, listingJson, listingOfEvents, narListing,
  type ListingDirectory, type ListingNode, type ListingRegular, type ListingSymlink
} from "./listing.ts"
