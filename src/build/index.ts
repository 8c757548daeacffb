/**
 * The builder: the scheduler (`realise`) that realises derivation graphs in the store of the
 * context, building what is missing in the `Sandbox` and registering it through the `BuildHost`,
 * and the `StoreBuild` layer over it.
 */
export { realise, type RealiseServices } from "./realise.ts"
export { buildDerivation, type DerivationBuild } from "./build-derivation.ts"
export { loadDerivationGraph, readDerivation, staticOutputHashes, type DerivationGraph, type LoadedDerivation } from "./derivation-graph.ts"
export { layer as builderLayer } from "./builder.ts"
export { addDerivationText, addDrvFile, addDrvFiles } from "./add-derivations.ts"
export { addDerivationClosure, addDerivations, buildDerivations } from "./derivation-closure.ts"
