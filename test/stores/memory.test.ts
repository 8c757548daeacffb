import { Effect } from "effect"
import * as MemoryStore from "../../src/layers/memory.ts"
import { storeConformance } from "./store-suite.ts"

storeConformance("memory", () => Effect.sync(() => MemoryStore.make()), { checksReferences: true })
