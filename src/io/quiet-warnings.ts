/**
 * Node 22 warns that node:sqlite is experimental the first time it is loaded (Node 24 does not).
 * b3 knows and depends on it (the local store's database): the warning says nothing a b3 user can
 * act on, so it is not printed. Every other warning is.
 */
export const quietSqliteWarning = (): void => {
  const emitWarning = process.emitWarning
  process.emitWarning = ((warning: string | Error, ...rest: Array<any>) => {
    const type = typeof rest[0] === "string" ? rest[0] : rest[0]?.type
    if (type === "ExperimentalWarning" && /SQLite/.test(String(warning))) return
    return emitWarning.call(process, warning, ...rest)
  }) as typeof process.emitWarning
}
