/** NARs and the filesystem: dumping a path as a NAR (in parallel for big trees) and restoring a NAR to a directory. */
export * from "./errors.ts"
export { narFromPath, narDigestOfPath, forEachNarChunk, type DumpOptions } from "./dump-path.ts"
export { writevAt } from "./write-at.ts"
export { restoreCheckedFromFd, restoreEventsNow, restoreNar, restoreNarEvents, restoreNarFromFd } from "./restore.ts"
