// Numbered schema migrations of the catalog, applied in order at open and recorded in
// schema_migrations(version, applied_at). Never edit a released migration: append one.
// LSNs and segment numbers are INTEGER (int64); the rows mirror types.ts.

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'servers, backups, wal segments, history files, receiver heartbeats',
    sql: `
      CREATE TABLE servers (
        name             TEXT PRIMARY KEY,
        system_id        TEXT,
        pg_version       INTEGER,
        wal_segment_size INTEGER,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL
      );

      CREATE TABLE backups (
        server            TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        backup_id         TEXT NOT NULL,
        name              TEXT,
        status            TEXT NOT NULL
                          CHECK (status IN ('STARTED','WAITING_FOR_WALS','DONE','FAILED','DELETING')),
        begin_time        TEXT,
        end_time          TEXT,
        begin_lsn         INTEGER,
        end_lsn           INTEGER,
        begin_wal         TEXT,
        end_wal           TEXT,
        timeline          INTEGER,
        pg_version        INTEGER,
        system_id         TEXT,
        wal_segment_size  INTEGER,
        size              INTEGER NOT NULL DEFAULT 0,
        deduplicated_size INTEGER NOT NULL DEFAULT 0,
        cluster_size      INTEGER,
        compression       TEXT,
        keep              TEXT CHECK (keep IN ('full','standalone')),
        error             TEXT,
        server_timezone   TEXT,
        tablespaces       TEXT NOT NULL DEFAULT '[]',
        pid               INTEGER,
        info              TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (server, backup_id)
      ) WITHOUT ROWID;
      CREATE UNIQUE INDEX backups_server_name ON backups (server, name) WHERE name IS NOT NULL;
      CREATE INDEX backups_server_status ON backups (server, status, backup_id);

      CREATE TABLE wal_segments (
        server      TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        timeline    INTEGER NOT NULL,
        segno       INTEGER NOT NULL,
        name        TEXT NOT NULL,
        size        INTEGER NOT NULL,
        stored_size INTEGER NOT NULL,
        compression TEXT,
        checksum    TEXT NOT NULL,
        archived_at TEXT NOT NULL,
        PRIMARY KEY (server, timeline, segno)
      ) WITHOUT ROWID;
      -- A narrow copy of the key: range counts and gap scans read ~15 bytes a row instead of the whole row.
      CREATE INDEX wal_segments_position ON wal_segments (server, timeline, segno);
      -- lookups and deletions by file name (names cannot be turned into segno without the segment size)
      CREATE UNIQUE INDEX wal_segments_server_name ON wal_segments (server, name);

      CREATE TABLE history_files (
        server      TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE,
        tli         INTEGER NOT NULL,
        name        TEXT NOT NULL,
        parent_tli  INTEGER NOT NULL,
        switch_lsn  INTEGER NOT NULL,
        checksum    TEXT NOT NULL,
        archived_at TEXT NOT NULL,
        PRIMARY KEY (server, tli)
      ) WITHOUT ROWID;

      CREATE TABLE receiver_heartbeats (
        server       TEXT PRIMARY KEY REFERENCES servers(name) ON DELETE CASCADE,
        pid          INTEGER NOT NULL,
        state        TEXT NOT NULL,
        received_lsn INTEGER,
        flushed_lsn  INTEGER,
        timeline     INTEGER,
        message      TEXT,
        updated_at   TEXT NOT NULL
      );
    `,
  },
];

export const LATEST_SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]!.version;
