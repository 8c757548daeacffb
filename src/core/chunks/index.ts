/** The chunk store's pure parts: chunking, store-path normalisation, manifests and pack indexes. */
export * from "./binary.ts"
export * from "./fastcdc.ts"
export * from "./formats.ts"
export * from "./normalise.ts"
export * from "./resemblance.ts"
