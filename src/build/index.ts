/**
 * Building: the scheduler (`realise`) that realises derivation graphs in a local store, building
 * each missing derivation in a sandbox bit-identical to Nix's (`sandbox/`), and the `StoreBuild`
 * layer over it.
 */
export { realise } from "./realise.ts"
export { buildDerivation, type DerivationBuild } from "./build-derivation.ts"
export { loadDerivationGraph, readDerivation, type DerivationGraph } from "./read-derivation.ts"
export { logPath, readBuildLog } from "./build-log.ts"
export { layer as localBuilderLayer, makeLocalBuilder } from "./local-builder.ts"
export { addDerivationText, addDrvFile, addDrvFiles } from "./add-derivations.ts"
