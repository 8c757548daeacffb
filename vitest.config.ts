import { defineConfig } from "vitest/config"

// "b3-source": `b3`, `b3/plugin` and the plugin packages (@b3/ipfs, @b3/s3) resolve to their
// TypeScript sources in this repository (their `exports`), not to the compiled lib/ a package ships.
const conditions = ["b3-source", "node", "development|production"]

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ["b3-source"] } },
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
