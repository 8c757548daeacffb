/** Nix's wire protocols, pure: framing, values, and the worker (daemon) and serve protocols. */
export * from "./errors.ts"
export * as Wire from "./decoder.ts"
export { WireWriter, encode, frameHeader, endFrame } from "./encoder.ts"
export { NarBoundary } from "./nar-boundary.ts"
export * as Worker from "./worker-protocol.ts"
export * as Serve from "./serve-protocol.ts"
