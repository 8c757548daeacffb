/**
 * The chunk index's invariants about delta chunks, read from a chunked+file store's SQLite index:
 * every delta chunk's base has a row, is stored whole, is referenced at least once per delta chunk
 * that needs it and is not dead; super-feature rows belong to whole chunks that exist.
 */
import { expect } from "@effect/vitest"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"

/** The index's invariants about delta chunks and their bases (read from the SQLite file). */
export const checkDeltaIndex = (root: string) => {
  const db = new DatabaseSync(join(root, "index", "chunks.sqlite"), { readOnly: true })
  try {
    const one = (sql: string) => Number((db.prepare(sql).get() as { n: number | bigint }).n)
    // every delta chunk's base has a row and is stored whole
    expect(one("select count(*) as n from chunks d left join chunks b on b.id = d.base where d.codec = 2 and (b.id is null or b.codec = 2)")).toBe(0)
    // only delta chunks name a base
    expect(one("select count(*) as n from chunks where (codec = 2) <> (base is not null)")).toBe(0)
    // a base is referenced at least once per delta chunk that needs it, and so is not dead
    expect(one("select count(*) as n from chunks b join (select base, count(*) as k from chunks where base is not null group by base) d on d.base = b.id where b.refs < d.k or b.dead_since is not null")).toBe(0)
    // super-features belong to whole chunks that exist
    expect(one("select count(*) as n from features f left join chunks c on c.id = f.id where c.id is null or c.codec = 2")).toBe(0)
  } finally {
    db.close()
  }
}

