/**
 * Where a local store keeps things, as Nix lays them out: `<root><storeDir>` for contents and
 * `<root>/nix/var/nix` for state (db/db.sqlite, gcroots, temproots). `root` is empty for the
 * real `/nix/store`, or a directory like `/tmp/r` for a chroot store (`nix --store /tmp/r`).
 */
import { join } from "node:path"

export interface LocalStoreLayout {
  /** Physical prefix ("" for a real store). */
  readonly root: string
  /** Logical store directory, e.g. /nix/store. */
  readonly storeDir: string
  /** Where the store's contents physically are. */
  readonly realStoreDir: string
  readonly stateDir: string
  readonly dbDir: string
  readonly dbPath: string
  readonly gcRootsDir: string
  readonly tempRootsDir: string
  /** Build logs (`<logDir>/drvs/<2 chars>/<rest of the drv base name>`), as Nix's NIX_LOG_DIR. */
  readonly logDir: string
}

export const makeLayout = (options: { readonly root?: string; readonly storeDir: string; readonly stateDir?: string; readonly logDir?: string }): LocalStoreLayout => {
  const root = options.root ?? ""
  const stateDir = options.stateDir ?? join(root || "/", "nix/var/nix")
  const dbDir = join(stateDir, "db")
  return {
    root,
    storeDir: options.storeDir,
    realStoreDir: root ? join(root, options.storeDir) : options.storeDir,
    stateDir,
    dbDir,
    dbPath: join(dbDir, "db.sqlite"),
    gcRootsDir: join(stateDir, "gcroots"),
    tempRootsDir: join(stateDir, "temproots"),
    logDir: options.logDir ?? join(root || "/", "nix/var/log/nix")
  }
}
