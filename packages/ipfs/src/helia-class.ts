/**
 * Helia's node class, from the installed `helia` package's own file rather than its entry point,
 * which builds Helia's default libp2p configuration (WebRTC, DHT, relays: a second to load, and the
 * package that brings react-native). The published plugin is bundled (scripts/build.ts), and there
 * this module is replaced by a static import of that file.
 */
import type { Helia, HeliaInit } from "helia"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { pathToFileURL } from "node:url"

export type HeliaClass = new (init: HeliaInit & { name: string; version: string }) => Helia

export const loadHeliaClass = async (): Promise<HeliaClass> => {
  const entry = createRequire(import.meta.url).resolve("helia")
  const module = (await import(pathToFileURL(join(dirname(entry), "helia.js")).href)) as { Helia: HeliaClass }
  return module.Helia
}
