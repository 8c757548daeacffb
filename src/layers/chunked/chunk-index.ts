/**
 * The chunk index: what the writers of a chunk store agree on, in SQLite or PostgreSQL.
 *
 * - `chunks`: chunk id → (pack, offset, stored and raw length, codec, the base of a delta chunk), its
 *   reference count (how many valid paths use it, plus how many delta chunks have it as their base)
 *   and `dead_since`. A chunk is *pending* (refs 0, not dead) from the moment
 *   its pack is sealed until a path using it commits; *live* (refs > 0); or *dead* (refs 0,
 *   `dead_since` set: its last path was deleted, or the ingest that wrote it failed or died).
 *   Lookups for deduplication see live and pending chunks, never dead ones.
 * - `features`: super-feature → chunk, for the chunks stored whole (codec 0 or 1): where an ingest
 *   looks for a base to delta-compress a new chunk against. A delta chunk's row holds a reference
 *   on its base from the moment it is sealed (same transaction) until the row is deleted (same
 *   transaction), so a base outlives every chunk that needs it; a base that loses its last
 *   reference that way is dead like any other chunk. Rows of deleted chunks go with them.
 * - `writers`: one row per ingest in progress (when it started, and by whom). A dead chunk is deleted
 *   only once every ingest that was running when it died has ended (`dead_since` before the oldest
 *   writer's start): an ingest that found the chunk while it was still alive may yet commit a path
 *   that uses it, which brings it back to life.
 * - `packs`: pack name → current version, size, the bytes of its chunks that still have rows
 *   (`rows_bytes`: what a repack would keep) and of live ones (`live`), and the state of a rewrite
 *   in progress (`next_version`, `stale_version`) so a killed repack is finished or undone.
 * - `paths`: store path → narinfo and manifest, `state` 0 committed but its record not yet
 *   published to the blob store, 1 published, 2 being deleted.
 *
 * Every change of reference counts happens in the same transaction as the path row it is for.
 */
import { Effect, Option } from "effect"
import { hex } from "../../core/chunks/binary.ts"
import type { Codec, PackEntry } from "../../core/chunks/formats.ts"
import { StoreCorrupt, type StoreIoError } from "../../services/store-errors.ts"
import type { Db, Sql, SqlValue } from "./db.ts"

const schema = `
create table if not exists meta (key text primary key, value text not null);
create table if not exists packs (
  name text primary key, version integer not null, state text not null, owner text not null,
  size bigint not null, rows_bytes bigint not null, live bigint not null, created bigint not null,
  next_version integer, stale_version integer);
create table if not exists chunks (
  id BLOB primary key, pack text not null, off bigint not null, stored integer not null, raw integer not null,
  codec integer not null, refs integer not null, writer text, dead_since bigint, base BLOB) WITHOUT ROWID;
create index if not exists chunks_by_pack on chunks (pack);
create table if not exists features (sf bigint not null, id BLOB not null, primary key (sf, id)) WITHOUT ROWID;
create index if not exists features_by_id on features (id);
create index if not exists chunks_dead on chunks (dead_since) where dead_since is not null;
create index if not exists chunks_pending on chunks (writer) where refs = 0 and dead_since is null;
create table if not exists paths (
  hash_part text primary key, store_path text not null, nar_info text not null, manifest BLOB not null,
  nar_size bigint not null, state integer not null, registered bigint not null);
create index if not exists paths_unsettled on paths (state) where state <> 1;
create table if not exists refs (reference text not null, referrer text not null, primary key (reference, referrer));
create table if not exists writers (id text primary key, owner text not null, started bigint not null, heartbeat bigint not null);
`

export interface ChunkLocation {
  readonly pack: string
  readonly version: number
  readonly offset: number
  readonly stored: number
  readonly raw: number
  readonly codec: Codec
}

export interface PackRow {
  readonly name: string
  readonly version: number
  readonly state: string
  readonly owner: string
  readonly size: number
  readonly rows_bytes: number
  readonly live: number
  readonly created: number
  readonly next_version: number | null
  readonly stale_version: number | null
}

export interface PathRow {
  readonly hash_part: string
  readonly store_path: string
  readonly nar_info: string
  readonly manifest: Uint8Array
  readonly nar_size: number
  readonly state: number
}

export interface CommitPath {
  readonly hashPart: string
  readonly storePath: string
  readonly narInfo: string
  readonly manifest: Uint8Array
  readonly narSize: number
  /** The distinct chunks (hex id) the manifest uses, and the pack it names for each. */
  readonly chunks: ReadonlyMap<string, string>
  readonly references: ReadonlyArray<string>
}

export interface IndexStats {
  readonly paths: number
  readonly logicalBytes: number
  readonly chunks: number
  readonly packs: number
  readonly packBytes: number
  readonly rowBytes: number
  readonly liveBytes: number
  readonly recordBytes: number
  readonly deltaChunks: number
  readonly deltaBytes: number
  readonly deltaRawBytes: number
}

/** A chunk going into the index with its pack: who wrote it and, for a whole chunk, its super-features. */
export type SealEntry = PackEntry & { readonly writer: string; readonly superFeatures?: ReadonlyArray<number> | undefined }

const BATCH = 400

const chunked = <A>(items: ReadonlyArray<A>, size = BATCH): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

const marks = (n: number) => Array.from({ length: n }, () => "?").join(", ")
const idBytes = (h: string) => new Uint8Array(Buffer.from(h, "hex"))

export const makeChunkIndex = (db: Db, uri: string) => Effect.gen(function*() {
  yield* db.migrate(schema)
  // an index made before delta chunks: its chunks table has no base column yet
  if (db.dialect === "postgres") yield* db.migrate("alter table chunks add column if not exists base BLOB")
  else if ((yield* Effect.exit(db.all("select base from chunks limit 0")))._tag === "Failure") yield* db.migrate("alter table chunks add column base BLOB")
  const corrupt = (reason: string) => new StoreCorrupt({ store: uri, reason })

  /**
   * Changes to pack rows, made last and in name order. Transactions here lock chunk rows in id
   * order, then pack rows in name order: taken in two orders, two writers' transactions deadlock
   * (PostgreSQL aborts one, which is retried).
   */
  const packChanges = () => {
    const live = new Map<string, number>()
    const rows = new Map<string, number>()
    const add = (m: Map<string, number>, pack: string, bytes: number) => { m.set(pack, (m.get(pack) ?? 0) + bytes) }
    return {
      live: (pack: string, bytes: number) => add(live, pack, bytes),
      rows: (pack: string, bytes: number) => add(rows, pack, bytes),
      liveOf: (pack: string) => live.get(pack) ?? 0,
      /** The updates, in name order; `own` may make a pack's update itself. */
      apply: (tx: Sql, own?: (pack: string) => Effect.Effect<void, StoreIoError> | undefined) =>
        Effect.forEach([...new Set([...live.keys(), ...rows.keys()])].sort(), (pack) =>
          own?.(pack) ?? tx.run("update packs set live = live + ?, rows_bytes = rows_bytes + ? where name = ?", [live.get(pack) ?? 0, rows.get(pack) ?? 0, pack]), { discard: true })
    }
  }
  /** Chunk rows in id order (PostgreSQL; SQLite has one writer at a time): locked before a statement that changes several. */
  const lockInOrder = (tx: Sql, where: string, params: ReadonlyArray<SqlValue>) =>
    db.dialect === "postgres" ? tx.all(`select id from chunks where ${where} order by id for update`, params) : Effect.void
  /** These chunk rows (hex ids; those that exist) locked in id order. */
  const lockIds = (tx: Sql, ids: ReadonlyArray<string>) => db.dialect === "postgres"
    ? Effect.forEach(chunked([...new Set(ids)].sort(), 2000), (batch) => lockInOrder(tx, `id in (${marks(batch.length)})`, batch.map(idBytes)), { discard: true })
    : Effect.void

  /** Adds `delta` to the reference count of each chunk; returns the bytes that became live (or dead) per pack. */
  const bumpRefs = (tx: Sql, ids: ReadonlyArray<string>, delta: 1 | -1, now: number) => Effect.gen(function*() {
    const changed = packChanges()
    const sorted = [...ids].sort()
    const rows: Array<{ id: Uint8Array; refs: number; pack: string; stored: number }> = []
    for (const batch of chunked(sorted, db.dialect === "postgres" ? 2000 : 400)) {
      // locked in id order first (PostgreSQL): an update of many rows locks them in whatever order its plan meets them
      yield* lockInOrder(tx, `id in (${marks(batch.length)})`, batch.map(idBytes))
      rows.push(...yield* tx.all<{ id: Uint8Array; refs: number; pack: string; stored: number }>(
        delta === 1
          ? `update chunks set refs = refs + 1, dead_since = null where id in (${marks(batch.length)}) returning id, refs, pack, stored`
          : `update chunks set refs = refs - 1, dead_since = case when refs = 1 then ? else dead_since end where id in (${marks(batch.length)}) returning id, refs, pack, stored`,
        delta === 1 ? batch.map(idBytes) : [now, ...batch.map(idBytes)]))
    }
    if (rows.length !== sorted.length) {
      const found = new Set(rows.map((r) => hex(r.id)))
      const missing = sorted.find((id) => !found.has(id))
      return { missing, rows }
    }
    for (const r of rows) {
      if ((delta === 1 && r.refs === 1) || (delta === -1 && r.refs === 0)) changed.live(r.pack, delta * r.stored)
    }
    yield* changed.apply(tx)
    return { missing: undefined, rows }
  })

  /** `n` more references on a delta chunk's base (which must have a row, in `pack`); false when it has none there. */
  const holdBase = (tx: Sql, changes: ReturnType<typeof packChanges>, base: Uint8Array, pack: string, n: number) => Effect.gen(function*() {
    const rows = yield* tx.all<{ refs: number; pack: string; stored: number }>(
      "update chunks set refs = refs + ?, dead_since = null where id = ? and pack = ? and codec <> 2 returning refs, pack, stored", [n, base, pack])
    if (rows.length === 0) return false
    if (rows[0]!.refs === n) changes.live(pack, rows[0]!.stored)
    return true
  })
  /** Drops a delta chunk's reference on its base: dead from `now` if it was the last. */
  const releaseBase = (tx: Sql, changes: ReturnType<typeof packChanges>, base: Uint8Array, now: number) => Effect.gen(function*() {
    const rows = yield* tx.all<{ refs: number; pack: string; stored: number }>(
      "update chunks set refs = refs - 1, dead_since = case when refs = 1 then ? else dead_since end where id = ? returning refs, pack, stored", [now, base])
    if (rows.length > 0 && rows[0]!.refs === 0) changes.live(rows[0]!.pack, -rows[0]!.stored)
  })
  /** (super-feature, chunk) rows, many at a time. */
  const addFeatures = (tx: Sql, rows: ReadonlyArray<readonly [number, Uint8Array]>) => Effect.forEach(chunked(rows, 400), (batch) =>
    tx.run(`insert into features (sf, id) values ${batch.map(() => "(?, ?)").join(", ")} on conflict do nothing`, batch.flat()), { discard: true })

  return {
    db,

    // ---- writers ------------------------------------------------------------------------
    registerWriter: (id: string, owner: string, now: number) =>
      db.run("insert into writers (id, owner, started, heartbeat) values (?, ?, ?, ?)", [id, owner, now, now]),
    /** Ends an ingest: chunks it wrote that no path took are dead from now. */
    unregisterWriter: (id: string, now: number) => db.transaction((tx) => Effect.gen(function*() {
      yield* lockInOrder(tx, "writer = ? and refs = 0 and dead_since is null", [id])
      yield* tx.run("update chunks set dead_since = ? where writer = ? and refs = 0 and dead_since is null", [now, id])
      yield* tx.run("delete from writers where id = ?", [id])
    })),
    heartbeat: (ids: ReadonlyArray<string>, now: number) =>
      ids.length === 0 ? Effect.void : db.run(`update writers set heartbeat = ? where id in (${marks(ids.length)})`, [now, ...ids]),
    writers: () => db.all<{ id: string; owner: string; started: number; heartbeat: number }>("select id, owner, started, heartbeat from writers"),

    // ---- chunks -------------------------------------------------------------------------
    /** Which of these chunks (hex ids) are live or pending, and in which pack. */
    lookup: (ids: ReadonlyArray<string>) => Effect.gen(function*() {
      const found = new Map<string, string>()
      for (const batch of chunked(ids)) {
        const rows = yield* db.all<{ id: Uint8Array; pack: string }>(
          `select id, pack from chunks where id in (${marks(batch.length)}) and dead_since is null`, batch.map(idBytes))
        for (const r of rows) found.set(hex(r.id), r.pack)
      }
      return found
    }),
    /**
     * Chunks stored whole, live or pending, that share a super-feature with these: per super-feature,
     * the chunks (hex id) and their packs.
     */
    similar: (sfs: ReadonlyArray<number>) => Effect.gen(function*() {
      const found = new Map<number, Array<{ id: string; pack: string }>>()
      for (const batch of chunked([...new Set(sfs)])) {
        const rows = yield* db.all<{ sf: number | string; id: Uint8Array; pack: string }>(
          `select f.sf, f.id, c.pack from features f join chunks c on c.id = f.id where f.sf in (${marks(batch.length)}) and c.dead_since is null and c.codec <> 2`, batch)
        for (const r of rows) {
          const sf = Number(r.sf)
          const list = found.get(sf) ?? []
          if (list.length < 4) list.push({ id: hex(r.id), pack: r.pack })
          found.set(sf, list)
        }
      }
      return found
    }),
    locate: (ids: ReadonlyArray<string>) => Effect.gen(function*() {
      const found = new Map<string, ChunkLocation>()
      for (const batch of chunked(ids)) {
        const rows = yield* db.all<{ id: Uint8Array; pack: string; version: number; off: number; stored: number; raw: number; codec: Codec }>(
          `select c.id, c.pack, p.version, c.off, c.stored, c.raw, c.codec from chunks c join packs p on p.name = c.pack where c.id in (${marks(batch.length)})`,
          batch.map(idBytes))
        for (const r of rows) found.set(hex(r.id), { pack: r.pack, version: r.version, offset: r.off, stored: r.stored, raw: r.raw, codec: r.codec })
      }
      return found
    }),

    // ---- packs --------------------------------------------------------------------------
    /** A pack about to be uploaded: known before its blob exists, so a crash leaves nothing untracked. */
    beginPack: (name: string, owner: string, now: number) =>
      db.run("insert into packs (name, version, state, owner, size, rows_bytes, live, created) values (?, 1, 'writing', ?, 0, 0, 0, ?)", [name, owner, now]),
    /**
     * The pack's blob and index are stored: its chunks get rows (pending, owned by their writers).
     * A chunk that already has a row keeps it, unless that row is dead: then it moves here (the new
     * copy is as good, and the dead one will go). A delta chunk takes a reference on its base in the
     * same transaction; one whose base has no row (any more) in the pack it names gets no row: its
     * bytes are garbage, and an ingest that wanted it fails at commit (to be retried).
     */
    sealPack: (name: string, size: number, entries: ReadonlyArray<SealEntry>, now: number) => db.transaction((tx) => Effect.gen(function*() {
      let rowsBytes = 0
      const changes = packChanges()
      // Rows in id order (the pack's chunks that already have rows, and the bases), as every
      // transaction here takes them; then the bases, one update each for all the delta chunks on it.
      const wanted = new Map<string, { id: Uint8Array; pack: string; n: number }>()
      for (const e of entries) {
        if (e.codec !== 2 || !e.base) continue
        const key = `${hex(e.base.id)}:${hex(e.base.pack)}`
        const w = wanted.get(key)
        if (w) w.n++
        else wanted.set(key, { id: e.base.id, pack: hex(e.base.pack), n: 1 })
      }
      yield* lockIds(tx, [...entries.map((e) => hex(e.id)), ...[...wanted.values()].map((w) => hex(w.id))])
      const held = new Set<string>()
      for (const [key, w] of [...wanted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        if (yield* holdBase(tx, changes, w.id, w.pack, w.n)) held.add(key)
      }
      const candidates = [...entries].sort((a, b) => Buffer.compare(a.id, b.id)).filter((e) =>
        e.codec !== 2 || (e.base !== undefined && held.has(`${hex(e.base.id)}:${hex(e.base.pack)}`)))
      // new rows many at a time (in id order); a writer sealing the same chunk at the same moment waits here for the other's commit
      const inserted = new Set<string>()
      for (const batch of chunked(candidates, 200)) {
        const rows = yield* tx.all<{ id: Uint8Array }>(
          `insert into chunks (id, pack, off, stored, raw, codec, refs, writer, dead_since, base) values ${batch.map(() => "(?, ?, ?, ?, ?, ?, 0, ?, null, ?)").join(", ")} on conflict (id) do nothing returning id`,
          batch.flatMap((e) => [e.id, name, e.offset, e.stored, e.raw, e.codec, e.writer, e.codec === 2 ? e.base!.id : null]))
        for (const r of rows) inserted.add(hex(r.id))
      }
      const features: Array<readonly [number, Uint8Array]> = []
      for (const e of candidates) {
        const id = e.id
        const base = e.codec === 2 ? e.base : undefined
        if (inserted.has(hex(id))) { rowsBytes += e.stored; for (const sf of e.superFeatures ?? []) features.push([sf, id]); continue }
        // the row there is, locked only when it is dead (to take it over): a live one is left alone
        const seen = yield* tx.all<{ dead: number | null }>("select dead_since as dead from chunks where id = ?", [id])
        const old = seen.length > 0 && seen[0]!.dead !== null
          ? yield* tx.all<{ pack: string; stored: number; dead: number | null; base: Uint8Array | null }>(
            `select pack, stored, dead_since as dead, base from chunks where id = ?${db.dialect === "postgres" ? " for update" : ""}`, [id])
          : []
        if (old.length > 0 && old[0]!.dead !== null) {
          yield* tx.run("update chunks set pack = ?, off = ?, stored = ?, raw = ?, codec = ?, writer = ?, dead_since = null, base = ? where id = ?",
            [name, e.offset, e.stored, e.raw, e.codec, e.writer, base?.id ?? null, id])
          if (old[0]!.base !== null) yield* releaseBase(tx, changes, old[0]!.base, now)
          yield* tx.run("delete from features where id = ?", [id])
          for (const sf of e.superFeatures ?? []) features.push([sf, id])
          changes.rows(old[0]!.pack, -old[0]!.stored)
          rowsBytes += e.stored
        } else if (base) {
          // kept the row there is: this copy does not need its base
          yield* releaseBase(tx, changes, base.id, now)
        }
      }
      yield* addFeatures(tx, features)
      changes.rows(name, rowsBytes)
      yield* changes.apply(tx, (pack) => pack === name
        ? tx.run("update packs set state = 'sealed', size = ?, rows_bytes = ?, live = live + ? where name = ?", [size, rowsBytes, changes.liveOf(name), name])
        : undefined)
    })),
    pack: (name: string) => Effect.map(db.all<PackRow>("select * from packs where name = ?", [name]), (rows) => Option.fromNullishOr(rows[0])),
    packs: () => db.all<PackRow>("select * from packs"),
    /** Packs not fully settled: uploads that may have died, rewrites to finish or undo. */
    unsettledPacks: () => db.all<PackRow>("select * from packs where state <> 'sealed' or next_version is not null or stale_version is not null"),
    /** The chunks with rows in a pack, by offset (with the base and its pack for a delta chunk). */
    packChunks: (name: string) => Effect.map(
      db.all<{ id: Uint8Array; off: number; stored: number; raw: number; codec: Codec; base: Uint8Array | null; base_pack: string | null }>(
        "select c.id, c.off, c.stored, c.raw, c.codec, c.base, b.pack as base_pack from chunks c left join chunks b on b.id = c.base where c.pack = ? order by c.off", [name]),
      (rows) => rows.map((r) => ({
        id: r.id, off: r.off, stored: r.stored, raw: r.raw, codec: r.codec,
        base: r.base !== null && r.base_pack !== null ? { id: r.base, pack: new Uint8Array(Buffer.from(r.base_pack, "hex")) } : undefined
      }))),
    dropPack: (name: string) => db.transaction((tx) => Effect.gen(function*() {
      const left = yield* tx.all<{ n: number }>("select count(*) as n from chunks where pack = ?", [name])
      if (Number(left[0]?.n ?? 0) > 0) return false
      yield* tx.run("delete from packs where name = ?", [name])
      return true
    })),
    setNextVersion: (name: string, version: number | null) => db.run("update packs set next_version = ? where name = ?", [version, name]),
    clearStale: (name: string) => db.run("update packs set stale_version = null where name = ?", [name]),
    /** The rewrite is stored: its chunks' new offsets, the pack's new version and size, in one go. */
    finishRepack: (name: string, version: number, size: number, offsets: ReadonlyArray<{ readonly id: Uint8Array; readonly offset: number }>) =>
      db.transaction((tx) => Effect.gen(function*() {
        for (const o of [...offsets].sort((a, b) => Buffer.compare(a.id, b.id))) yield* tx.run("update chunks set off = ? where id = ? and pack = ?", [o.offset, o.id, name])
        const sums = yield* tx.all<{ n_rows: number | null; n_live: number | null }>(
          "select sum(stored) as n_rows, sum(case when refs > 0 then stored else 0 end) as n_live from chunks where pack = ?", [name])
        yield* tx.run("update packs set stale_version = version, version = ?, next_version = null, size = ?, rows_bytes = ?, live = ? where name = ?",
          [version, size, Number(sums[0]?.n_rows ?? 0), Number(sums[0]?.n_live ?? 0), name])
      })),

    // ---- paths --------------------------------------------------------------------------
    path: (hashPart: string) => Effect.map(db.all<PathRow>("select * from paths where hash_part = ?", [hashPart]), (rows) => Option.fromNullishOr(rows[0])),
    /**
     * Makes a path valid: its row and its chunks' reference counts, in one transaction. Fails with
     * StoreCorrupt when a chunk it needs has gone (it was deleted by a GC: the add must be retried).
     * A chunk whose row moved to another pack since the ingest found it (a dead row replaced by a
     * new copy) is named by its current pack: `rewrite` re-encodes the manifest with those.
     * Returns undefined when the path was already there (nothing counted twice), else its manifest.
     */
    commitPath: (p: CommitPath, now: number, rewrite: (moved: ReadonlyMap<string, string>) => Uint8Array) => db.transaction((tx) => Effect.gen(function*() {
      // the row first: a writer committing the same path at the same moment waits here, then finds it
      const inserted = yield* tx.all<{ hash_part: string }>(
        "insert into paths (hash_part, store_path, nar_info, manifest, nar_size, state, registered) values (?, ?, ?, ?, ?, 0, ?) on conflict (hash_part) do nothing returning hash_part",
        [p.hashPart, p.storePath, p.narInfo, p.manifest, p.narSize, Math.floor(now / 1000)])
      if (inserted.length === 0) return undefined
      const { missing, rows } = yield* bumpRefs(tx, [...p.chunks.keys()], 1, now)
      if (missing !== undefined) return yield* corrupt(`chunk ${missing} of ${p.storePath} disappeared while it was being added (a garbage collection ran); add it again`)
      const moved = new Map<string, string>()
      for (const r of rows) { const id = hex(r.id); if (p.chunks.get(id) !== r.pack) moved.set(id, r.pack) }
      const manifest = moved.size > 0 ? rewrite(moved) : p.manifest
      if (moved.size > 0) yield* tx.run("update paths set manifest = ? where hash_part = ?", [manifest, p.hashPart])
      for (const r of new Set(p.references)) yield* tx.run("insert into refs (reference, referrer) values (?, ?) on conflict do nothing", [r, p.hashPart])
      return manifest
    })),
    setState: (hashPart: string, state: number) => db.run("update paths set state = ? where hash_part = ?", [state, hashPart]),
    setNarInfo: (hashPart: string, narInfo: string) => db.run("update paths set nar_info = ?, state = 0 where hash_part = ? and state <> 2", [narInfo, hashPart]),
    unsettledPaths: () => db.all<PathRow>("select * from paths where state <> 1"),
    /** The paths whose records are published (what readers see). */
    publishedPaths: () => Effect.map(db.all<{ store_path: string }>("select store_path from paths where state = 1"), (rows) => rows.map((r) => r.store_path)),
    referrers: (hashPart: string) => Effect.map(
      db.all<{ referrer: string; store_path: string }>("select r.referrer, p.store_path from refs r join paths p on p.hash_part = r.referrer where r.reference = ? and p.state <> 2", [hashPart]),
      (rows) => rows.map((r) => r.store_path)),
    /** Removes a path whose record is already gone from the blob store: its chunks lose a reference each. */
    finishDelete: (hashPart: string, chunks: ReadonlyArray<string>, now: number) => db.transaction((tx) => Effect.gen(function*() {
      const row = yield* tx.all<{ state: number }>("select state from paths where hash_part = ?", [hashPart])
      if (row.length === 0) return
      const { missing } = yield* bumpRefs(tx, chunks, -1, now)
      if (missing !== undefined) return yield* corrupt(`chunk ${missing} of deleted path ${hashPart} had no row`)
      yield* tx.run("delete from paths where hash_part = ?", [hashPart])
      yield* tx.run("delete from refs where referrer = ?", [hashPart])
    })),

    // ---- garbage ------------------------------------------------------------------------
    /** Marks the pending chunks of ingests that died as dead, and forgets those ingests. */
    reapWriters: (dead: ReadonlyArray<string>, now: number) => Effect.forEach(dead, (id) => db.transaction((tx) => Effect.gen(function*() {
      yield* lockInOrder(tx, "writer = ? and refs = 0 and dead_since is null", [id])
      yield* tx.run("update chunks set dead_since = ? where writer = ? and refs = 0 and dead_since is null", [now, id])
      yield* tx.run("delete from writers where id = ?", [id])
    })), { discard: true }),
    /** Deletes the rows of chunks dead since before `horizon`, a batch at a time; bytes per pack. */
    deleteDead: (horizon: number) => db.transaction((tx) => Effect.gen(function*() {
      const found = yield* tx.all<{ id: Uint8Array; base: Uint8Array | null }>(
        "select id, base from chunks where dead_since is not null and dead_since < ? and refs = 0 order by id limit 5000", [horizon])
      // locked in id order with their bases, like the rows of every other transaction here
      yield* lockIds(tx, [...found.map((r) => hex(r.id)), ...found.flatMap((r) => (r.base ? [hex(r.base)] : []))])
      const changes = packChanges()
      const packs = new Set<string>()
      const released: Array<Uint8Array> = []
      const now = Date.now()
      for (const r of found) {
        // only if still dead: a new copy sealed meanwhile may have taken the row over
        const gone = yield* tx.all<{ pack: string; stored: number; base: Uint8Array | null }>(
          "delete from chunks where id = ? and refs = 0 and dead_since is not null and dead_since < ? returning pack, stored, base", [r.id, horizon])
        if (gone.length === 0) continue
        yield* tx.run("delete from features where id = ?", [r.id])
        if (gone[0]!.base !== null) released.push(gone[0]!.base)
        changes.rows(gone[0]!.pack, -gone[0]!.stored)
        packs.add(gone[0]!.pack)
      }
      // their bases lose the references these chunks held (and may die now: they go at a later pass)
      for (const base of released.sort((a, b) => Buffer.compare(a, b))) yield* releaseBase(tx, changes, base, now)
      yield* changes.apply(tx)
      return { count: found.length, packs: [...packs] }
    })),
    meta: (key: string) => Effect.map(db.all<{ value: string }>("select value from meta where key = ?", [key]), (rows) => Option.fromNullishOr(rows[0]?.value)),
    setMeta: (key: string, value: string) => db.run("insert into meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value", [key, value]),
    /** Takes the store's maintenance lease if it is free or its holder is gone; true when taken. */
    takeLease: (owner: string, now: number, isGone: (holder: string, at: number) => boolean) => db.transaction((tx) => Effect.gen(function*() {
      const rows = yield* tx.all<{ value: string }>("select value from meta where key = 'gc-lease'")
      if (rows.length > 0) {
        const [holder, at] = rows[0]!.value.split("@")
        if (holder !== owner && !isGone(holder!, Number(at))) return false
      }
      yield* tx.run("insert into meta (key, value) values ('gc-lease', ?) on conflict (key) do update set value = excluded.value", [`${owner}@${now}`])
      return true
    })),
    dropLease: (owner: string) => db.run("delete from meta where key = 'gc-lease' and value like ?", [`${owner}@%`]),

    stats: () => Effect.gen(function*() {
      const p = yield* db.all<{ n: number; n_bytes: number | null; n_records: number | null }>(
        "select count(*) as n, sum(nar_size) as n_bytes, sum(length(manifest) + length(nar_info)) as n_records from paths where state <> 2")
      const c = yield* db.all<{ n: number }>("select count(*) as n from chunks")
      const d = yield* db.all<{ n: number; n_bytes: number | null; n_raw: number | null }>("select count(*) as n, sum(stored) as n_bytes, sum(raw) as n_raw from chunks where codec = 2")
      const k = yield* db.all<{ n: number; n_size: number | null; n_rows: number | null; n_live: number | null }>(
        "select count(*) as n, sum(size) as n_size, sum(rows_bytes) as n_rows, sum(live) as n_live from packs")
      return {
        paths: Number(p[0]?.n ?? 0),
        logicalBytes: Number(p[0]?.n_bytes ?? 0),
        recordBytes: Number(p[0]?.n_records ?? 0),
        chunks: Number(c[0]?.n ?? 0),
        packs: Number(k[0]?.n ?? 0),
        packBytes: Number(k[0]?.n_size ?? 0),
        rowBytes: Number(k[0]?.n_rows ?? 0),
        liveBytes: Number(k[0]?.n_live ?? 0),
        deltaChunks: Number(d[0]?.n ?? 0),
        deltaBytes: Number(d[0]?.n_bytes ?? 0),
        deltaRawBytes: Number(d[0]?.n_raw ?? 0)
      } satisfies IndexStats
    })
  }
})

export type ChunkIndex = Effect.Success<ReturnType<typeof makeChunkIndex>>
export type { SqlValue, StoreIoError }
