import { Effect } from "effect"
import * as MemoryStore from "../../src/layers/memory.ts"
import { storeConformance, uriStore } from "./store-suite.ts"

storeConformance("memory (MemoryStore.layer)", () => MemoryStore.layer(), { checksReferences: true })
storeConformance("memory://", () => uriStore(Effect.succeed("memory://")), { checksReferences: true })
