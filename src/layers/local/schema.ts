/**
 * The SQLite database with Nix's own schema (version 10, as Nix 2.8 creates it), so that real
 * Nix reads a store b3 wrote and b3 reads one Nix wrote.
 */
import { DatabaseSync } from "node:sqlite"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

export const schemaVersion = 10

const schema = `
create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer, -- null implies "false"
    sigs             text, -- space-separated
    ca               text -- if not null, an assertion that the path is content-addressed; see ValidPathInfo
);

create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);

create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);

create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;

create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null, -- symbolic output id, usually "out"
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);

create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
`

/** Nix 2.8's extension for content-addressed derivations (ca-specific-schema.sql, ca-schema version 3). */
export const caSchemaVersion = 3
const caSchema = `
create table if not exists Realisations (
    id integer primary key autoincrement not null,
    drvPath text not null,
    outputName text not null, -- symbolic output id, usually "out"
    outputPath integer not null,
    signatures text, -- space-separated list
    foreign key (outputPath) references ValidPaths(id) on delete cascade
);

create index if not exists IndexRealisations on Realisations(drvPath, outputName);

create table if not exists RealisationsRefs (
    referrer integer not null,
    realisationReference integer,
    foreign key (referrer) references Realisations(id) on delete cascade,
    foreign key (realisationReference) references Realisations(id) on delete restrict
);

create index if not exists IndexRealisationsRefs on RealisationsRefs(referrer);
create index if not exists IndexRealisationsRefsOnOutputPath on Realisations(outputPath);
`

/**
 * Opens (creating if needed) the store database: WAL, foreign keys on, a busy timeout for
 * concurrent writers. Returns a reason string when the database has a schema b3 does not know.
 * Synchronous and may throw on I/O errors: call it inside `Effect.try`.
 */
export const openDatabase = (dbDir: string): DatabaseSync | string => {
  mkdirSync(dbDir, { recursive: true })
  const schemaFile = join(dbDir, "schema")
  const caSchemaFile = join(dbDir, "ca-schema")
  if (existsSync(schemaFile)) {
    const version = Number(readFileSync(schemaFile, "utf8").trim())
    if (version !== schemaVersion) {
      return `the store database has schema version ${version}; b3 supports version ${schemaVersion} (that of Nix 2.3 to 2.8)`
    }
  }
  if (existsSync(caSchemaFile)) {
    const version = Number(readFileSync(caSchemaFile, "utf8").trim())
    if (version !== caSchemaVersion) {
      return `the store database has content-addressed schema version ${version}; b3 supports version ${caSchemaVersion} (that of Nix 2.8)`
    }
  }
  const db = new DatabaseSync(join(dbDir, "db.sqlite"), { enableForeignKeyConstraints: true, timeout: 60_000 })
  db.exec("pragma journal_mode = wal")
  db.exec("pragma synchronous = normal")
  db.exec(schema)
  // The tables Nix 2.8 adds with `ca-derivations`; with them (and ca-schema) Nix reads b3's realisations.
  db.exec(caSchema)
  if (!existsSync(schemaFile)) writeFileSync(schemaFile, `${schemaVersion}`)
  if (!existsSync(caSchemaFile)) writeFileSync(caSchemaFile, `${caSchemaVersion}`)
  return db
}
