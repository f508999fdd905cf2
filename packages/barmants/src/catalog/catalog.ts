// The SQLite catalog: the index of everything in the repository (servers, backups, WAL
// segments, history files, receiver heartbeats). The files stay the source of truth and
// the catalog can be rebuilt from them. This is the only file in barmants with SQL.

import fs from 'node:fs';
import Database from 'better-sqlite3';
import { CatalogError, HistoryFileConflictError, WalSegmentConflictError } from './errors.js';
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from './migrations.js';
import {
  BACKUP_STATUSES,
  type BackupPatch,
  type BackupRecord,
  type BackupStatus,
  type CatalogOpenOptions,
  type HistoryFileRecord,
  type KeepTarget,
  type ListBackupsOptions,
  type ListWalSegmentsOptions,
  type NewBackupRecord,
  type ReceiverHeartbeat,
  type SegnoRange,
  type ServerIdentity,
  type ServerRecord,
  type TablespaceRecord,
  type WalSegmentRecord,
} from './types.js';

type Db = Database.Database;
type Statement = Database.Statement;
type SqlValue = string | number | bigint | null;

const INT64_LIMIT = 1n << 63n;
const MAX_SEGNO = INT64_LIMIT - 1n;
// Gap search: below this many rows the window query runs directly; above, ranges split in 16.
const ISLAND_WINDOW_ROWS = 32_768n;
const ISLAND_FANOUT = 16n;

/** Refuse what SQLite INTEGER cannot hold, with the field named, instead of a bare RangeError. */
function int64(value: bigint, field: string): bigint {
  if (typeof value !== 'bigint') {
    throw new CatalogError('invalid-value', `${field} must be a bigint, got ${typeof value}`);
  }
  if (value < 0n || value >= INT64_LIMIT) {
    throw new CatalogError('invalid-value', `${field} ${value} is outside the catalog's range [0, 2^63)`);
  }
  return value;
}

function int64OrNull(value: bigint | null | undefined, field: string): bigint | null {
  return value === null || value === undefined ? null : int64(value, field);
}

function num(value: bigint | number | null): number | null {
  return value === null ? null : Number(value);
}

function now(): string {
  return new Date().toISOString();
}

function sqliteCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

// ---------------------------------------------------------------------------------------
// Row shapes as read with safeIntegers (every INTEGER column comes back as bigint).

interface ServerRow {
  name: string;
  system_id: string | null;
  pg_version: bigint | null;
  wal_segment_size: bigint | null;
  created_at: string;
  updated_at: string;
}

interface BackupRow {
  server: string;
  backup_id: string;
  name: string | null;
  status: BackupStatus;
  begin_time: string | null;
  end_time: string | null;
  begin_lsn: bigint | null;
  end_lsn: bigint | null;
  begin_wal: string | null;
  end_wal: string | null;
  timeline: bigint | null;
  pg_version: bigint | null;
  system_id: string | null;
  wal_segment_size: bigint | null;
  size: bigint;
  deduplicated_size: bigint;
  cluster_size: bigint | null;
  compression: string | null;
  keep: KeepTarget | null;
  error: string | null;
  server_timezone: string | null;
  tablespaces: string;
  pid: bigint | null;
  info: string;
}

interface WalRow {
  server: string;
  timeline: bigint;
  segno: bigint;
  name: string;
  size: bigint;
  stored_size: bigint;
  compression: string | null;
  checksum: string;
  archived_at: string;
}

interface HistoryRow {
  server: string;
  tli: bigint;
  name: string;
  parent_tli: bigint;
  switch_lsn: bigint;
  checksum: string;
  archived_at: string;
}

interface HeartbeatRow {
  server: string;
  pid: bigint;
  state: string;
  received_lsn: bigint | null;
  flushed_lsn: bigint | null;
  timeline: bigint | null;
  message: string | null;
  updated_at: string;
}

function serverFromRow(r: ServerRow): ServerRecord {
  return {
    name: r.name,
    systemId: r.system_id,
    pgVersion: num(r.pg_version),
    walSegmentSize: num(r.wal_segment_size),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function backupFromRow(r: BackupRow): BackupRecord {
  return {
    server: r.server,
    backupId: r.backup_id,
    name: r.name,
    status: r.status,
    beginTime: r.begin_time,
    endTime: r.end_time,
    beginLsn: r.begin_lsn,
    endLsn: r.end_lsn,
    beginWal: r.begin_wal,
    endWal: r.end_wal,
    timeline: num(r.timeline),
    pgVersion: num(r.pg_version),
    systemId: r.system_id,
    walSegmentSize: num(r.wal_segment_size),
    size: Number(r.size),
    deduplicatedSize: Number(r.deduplicated_size),
    clusterSize: num(r.cluster_size),
    compression: r.compression,
    keep: r.keep,
    error: r.error,
    serverTimezone: r.server_timezone,
    tablespaces: JSON.parse(r.tablespaces) as TablespaceRecord[],
    pid: num(r.pid),
    info: JSON.parse(r.info) as Record<string, unknown>,
  };
}

function walFromRow(r: WalRow): WalSegmentRecord {
  return {
    server: r.server,
    timeline: Number(r.timeline),
    segno: r.segno,
    name: r.name,
    size: Number(r.size),
    storedSize: Number(r.stored_size),
    compression: r.compression,
    checksum: r.checksum,
    archivedAt: r.archived_at,
  };
}

function historyFromRow(r: HistoryRow): HistoryFileRecord {
  return {
    server: r.server,
    tli: Number(r.tli),
    name: r.name,
    parentTli: Number(r.parent_tli),
    switchLsn: r.switch_lsn,
    checksum: r.checksum,
    archivedAt: r.archived_at,
  };
}

function heartbeatFromRow(r: HeartbeatRow): ReceiverHeartbeat {
  return {
    server: r.server,
    pid: Number(r.pid),
    state: r.state,
    receivedLsn: r.received_lsn,
    flushedLsn: r.flushed_lsn,
    timeline: num(r.timeline),
    message: r.message,
    updatedAt: r.updated_at,
  };
}

// ---------------------------------------------------------------------------------------
// Backup fields ↔ columns: one table drives insert, update and their encoding.

type BackupField = keyof BackupPatch;

const BACKUP_COLUMNS: Record<BackupField, string> = {
  name: 'name',
  status: 'status',
  beginTime: 'begin_time',
  endTime: 'end_time',
  beginLsn: 'begin_lsn',
  endLsn: 'end_lsn',
  beginWal: 'begin_wal',
  endWal: 'end_wal',
  timeline: 'timeline',
  pgVersion: 'pg_version',
  systemId: 'system_id',
  walSegmentSize: 'wal_segment_size',
  size: 'size',
  deduplicatedSize: 'deduplicated_size',
  clusterSize: 'cluster_size',
  compression: 'compression',
  keep: 'keep',
  error: 'error',
  serverTimezone: 'server_timezone',
  tablespaces: 'tablespaces',
  pid: 'pid',
  info: 'info',
};

const BACKUP_DEFAULTS: Required<BackupPatch> = {
  name: null,
  status: 'STARTED',
  beginTime: null,
  endTime: null,
  beginLsn: null,
  endLsn: null,
  beginWal: null,
  endWal: null,
  timeline: null,
  pgVersion: null,
  systemId: null,
  walSegmentSize: null,
  size: 0,
  deduplicatedSize: 0,
  clusterSize: null,
  compression: null,
  keep: null,
  error: null,
  serverTimezone: null,
  tablespaces: [],
  pid: null,
  info: {},
};

function encodeBackupField(field: BackupField, value: unknown): SqlValue {
  switch (field) {
    case 'beginLsn':
    case 'endLsn':
      return int64OrNull(value as bigint | null, field);
    case 'tablespaces':
      return JSON.stringify(value ?? []);
    case 'info':
      return JSON.stringify(value ?? {});
    case 'status':
      if (!BACKUP_STATUSES.includes(value as BackupStatus)) {
        throw new CatalogError('invalid-value', `unknown backup status ${JSON.stringify(value)}`);
      }
      return value as string;
    case 'keep':
      if (value !== null && value !== 'full' && value !== 'standalone') {
        throw new CatalogError('invalid-value', `unknown keep target ${JSON.stringify(value)}`);
      }
      return value as string | null;
    default:
      return value as SqlValue;
  }
}

const BACKUP_INSERT_SQL =
  `INSERT INTO backups (server, backup_id, ${Object.values(BACKUP_COLUMNS).join(', ')}) ` +
  `VALUES (@server, @backupId, ${Object.keys(BACKUP_COLUMNS)
    .map((f) => `@${f}`)
    .join(', ')})`;

// ---------------------------------------------------------------------------------------

export class Catalog {
  readonly path: string;
  readonly readonly: boolean;
  private readonly db: Db;
  // Keyed by the SQL literal itself: V8 caches a literal's hash, so a hot lookup costs nothing.
  private readonly statements = new Map<string, Statement>();
  private readonly safeStatements = new Map<string, Statement>();

  private constructor(path: string, db: Db, readonly: boolean) {
    this.path = path;
    this.db = db;
    this.readonly = readonly;
  }

  /**
   * Open (creating if needed, unless read-only) the catalog at `path` and bring its schema up
   * to date. A catalog migrated by a newer barmants is refused rather than guessed at.
   */
  static open(path: string, opts: CatalogOpenOptions = {}): Catalog {
    const readonly = opts.readonly === true;
    let created = false;
    if (!readonly) {
      try {
        // Create it 0600 ourselves so there is no moment where the umask decides.
        fs.closeSync(fs.openSync(path, 'wx', 0o600));
        created = true;
      } catch (err) {
        if (sqliteCode(err) !== 'EEXIST') {
          throw new CatalogError('catalog-open', `cannot create catalog ${path}: ${(err as Error).message}`, {
            cause: err,
          });
        }
      }
    }
    let db: Db;
    try {
      db = new Database(path, { readonly, fileMustExist: true });
    } catch (err) {
      throw new CatalogError('catalog-open', `cannot open catalog ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      // busy_timeout first: the other pragmas and the migrations may wait for another process.
      db.pragma('busy_timeout = 10000');
      if (!readonly) {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (String(mode).toLowerCase() !== 'wal') {
          throw new CatalogError('catalog-open', `cannot put catalog ${path} in WAL mode (got ${String(mode)})`);
        }
      }
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.defaultSafeIntegers(false);
      if (created) fs.chmodSync(path, 0o600);
      const catalog = new Catalog(path, db, readonly);
      catalog.migrate();
      return catalog;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Run `fn` in one transaction (nested calls become savepoints). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** Schema version recorded in the file. */
  schemaVersion(): number {
    const exists = this.stmt(
      `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`,
    ).get();
    if (exists === undefined) return 0;
    const row = this.db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
    return row.v ?? 0;
  }

  private migrate(): void {
    const tooNew = (version: number): CatalogError =>
      new CatalogError(
        'catalog-too-new',
        `catalog ${this.path} has schema version ${version}, this barmants knows up to ${LATEST_SCHEMA_VERSION}`,
        { hint: 'upgrade barmants, or rebuild the catalog from the repository with rebuild-catalog' },
      );
    const found = this.schemaVersion();
    if (found > LATEST_SCHEMA_VERSION) throw tooNew(found);
    if (found === LATEST_SCHEMA_VERSION) return;
    if (this.readonly) {
      throw new CatalogError(
        'catalog-outdated',
        `catalog ${this.path} has schema version ${found} and needs migrating to ${LATEST_SCHEMA_VERSION}`,
        { hint: 'run any barmants command that writes (e.g. barmants cron) to migrate it' },
      );
    }
    const apply = this.db.transaction(() => {
      this.db.exec(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)',
      );
      // Read again under the write lock: another process may have migrated meanwhile.
      const current = this.schemaVersion();
      if (current > LATEST_SCHEMA_VERSION) throw tooNew(current);
      const record = this.db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
      for (const m of MIGRATIONS) {
        if (m.version <= current) continue;
        this.db.exec(m.sql);
        record.run(m.version, now());
      }
    });
    apply.immediate();
  }

  /** Prepared statements are cached by text; `safe` ones return INTEGER columns as bigint. */
  private stmt(sql: string, safe = false): Statement {
    const cache = safe ? this.safeStatements : this.statements;
    let s = cache.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      if (safe) s.safeIntegers(true);
      cache.set(sql, s);
    }
    return s;
  }

  private unknownServer(server: string, err: unknown): CatalogError {
    return new CatalogError('unknown-server', `server "${server}" is not in the catalog`, {
      hint: 'register it with upsertServer first',
      cause: err,
    });
  }

  // ------------------------------------------------------------------ servers

  upsertServer(s: ServerIdentity): ServerRecord {
    const t = now();
    this.stmt(
      `INSERT INTO servers (name, system_id, pg_version, wal_segment_size, created_at, updated_at)
       VALUES (@name, @systemId, @pgVersion, @walSegmentSize, @t, @t)
       ON CONFLICT (name) DO UPDATE SET system_id = excluded.system_id, pg_version = excluded.pg_version,
         wal_segment_size = excluded.wal_segment_size, updated_at = excluded.updated_at`,
    ).run({ name: s.name, systemId: s.systemId, pgVersion: s.pgVersion, walSegmentSize: s.walSegmentSize, t });
    return this.getServer(s.name)!;
  }

  getServer(name: string): ServerRecord | null {
    const row = this.stmt('SELECT * FROM servers WHERE name = ?', true).get(name) as ServerRow | undefined;
    return row === undefined ? null : serverFromRow(row);
  }

  listServers(): ServerRecord[] {
    return (this.stmt('SELECT * FROM servers ORDER BY name', true).all() as ServerRow[]).map(serverFromRow);
  }

  /** Remove a server and everything the catalog knows of it. */
  forgetServer(name: string): boolean {
    return this.transaction(() => this.stmt('DELETE FROM servers WHERE name = ?').run(name).changes > 0);
  }

  /** Empty a server's backups, segments, history and heartbeat but keep its row (for a rebuild). */
  clearServer(name: string): void {
    this.transaction(() => {
      for (const table of ['backups', 'wal_segments', 'history_files', 'receiver_heartbeats']) {
        this.stmt(`DELETE FROM ${table} WHERE server = ?`).run(name);
      }
    });
  }

  // ------------------------------------------------------------------ backups

  insertBackup(rec: NewBackupRecord): BackupRecord {
    const params: Record<string, SqlValue> = { server: rec.server, backupId: rec.backupId };
    for (const field of Object.keys(BACKUP_COLUMNS) as BackupField[]) {
      const value = rec[field] === undefined ? BACKUP_DEFAULTS[field] : rec[field];
      params[field] = encodeBackupField(field, value);
    }
    try {
      this.stmt(BACKUP_INSERT_SQL).run(params);
    } catch (err) {
      throw this.backupWriteError(rec.server, rec.backupId, params.name, false, err);
    }
    return this.getBackup(rec.server, rec.backupId)!;
  }

  /** Change some fields of a backup; returns the updated record. */
  updateBackup(server: string, backupId: string, patch: Partial<BackupRecord>): BackupRecord {
    if ((patch.server !== undefined && patch.server !== server) || (patch.backupId !== undefined && patch.backupId !== backupId)) {
      throw new CatalogError('invalid-value', `cannot change the server or id of backup ${backupId}`);
    }
    const params: Record<string, SqlValue> = { server, backupId };
    const sets: string[] = [];
    for (const [field, value] of Object.entries(patch)) {
      if (field === 'server' || field === 'backupId' || value === undefined) continue;
      const column = BACKUP_COLUMNS[field as BackupField];
      if (column === undefined) throw new CatalogError('invalid-value', `backups have no field "${field}"`);
      params[field] = encodeBackupField(field as BackupField, value);
      sets.push(`${column} = @${field}`);
    }
    if (sets.length > 0) {
      let changes: number;
      try {
        changes = this.stmt(`UPDATE backups SET ${sets.join(', ')} WHERE server = @server AND backup_id = @backupId`).run(
          params,
        ).changes;
      } catch (err) {
        throw this.backupWriteError(server, backupId, params.name, true, err);
      }
      if (changes === 0) throw this.backupNotFound(server, backupId);
    }
    const rec = this.getBackup(server, backupId);
    if (rec === null) throw this.backupNotFound(server, backupId);
    return rec;
  }

  private backupNotFound(server: string, backupId: string): CatalogError {
    return new CatalogError('backup-not-found', `backup ${backupId} of server "${server}" is not in the catalog`, {
      hint: 'list the backups with barmants list-backups',
    });
  }

  private backupWriteError(
    server: string,
    backupId: string,
    name: SqlValue | undefined,
    updating: boolean,
    err: unknown,
  ): unknown {
    switch (sqliteCode(err)) {
      case 'SQLITE_CONSTRAINT_PRIMARYKEY':
      case 'SQLITE_CONSTRAINT_UNIQUE':
        // SQLite may trip on the name index before the key (WITHOUT ROWID reports both as UNIQUE).
        if (!updating && this.getBackup(server, backupId) !== null) {
          return new CatalogError('backup-exists', `backup ${backupId} of server "${server}" is already in the catalog`, {
            cause: err,
          });
        }
        return new CatalogError(
          'backup-name-taken',
          `backup name ${JSON.stringify(name)} is already used by another backup of server "${server}"`,
          { hint: 'choose another --name', cause: err },
        );
      case 'SQLITE_CONSTRAINT_FOREIGNKEY':
        return this.unknownServer(server, err);
      default:
        return err;
    }
  }

  getBackup(server: string, backupId: string): BackupRecord | null {
    const row = this.stmt('SELECT * FROM backups WHERE server = ? AND backup_id = ?', true).get(server, backupId) as
      | BackupRow
      | undefined;
    return row === undefined ? null : backupFromRow(row);
  }

  /** Backups of a server, oldest first (backup ids sort by time). */
  listBackups(server: string, opts: ListBackupsOptions = {}): BackupRecord[] {
    let rows: BackupRow[];
    if (opts.status === undefined) {
      rows = this.stmt('SELECT * FROM backups WHERE server = ? ORDER BY backup_id', true).all(server) as BackupRow[];
    } else {
      if (opts.status.length === 0) return [];
      const marks = opts.status.map(() => '?').join(', ');
      rows = this.stmt(
        `SELECT * FROM backups WHERE server = ? AND status IN (${marks}) ORDER BY backup_id`,
        true,
      ).all(server, ...opts.status) as BackupRow[];
    }
    return rows.map(backupFromRow);
  }

  deleteBackup(server: string, backupId: string): boolean {
    return this.stmt('DELETE FROM backups WHERE server = ? AND backup_id = ?').run(server, backupId).changes > 0;
  }

  /**
   * Resolve what an operator typed for a backup: an id, a name, `latest`/`last` and
   * `oldest`/`first` (DONE backups only, as Barman), or `last-failed`.
   */
  resolveBackupId(server: string, ref: string): BackupRecord | null {
    const pick = (status: BackupStatus, order: 'ASC' | 'DESC'): BackupRecord | null => {
      const row = this.stmt(
        `SELECT * FROM backups WHERE server = ? AND status = ? ORDER BY backup_id ${order} LIMIT 1`,
        true,
      ).get(server, status) as BackupRow | undefined;
      return row === undefined ? null : backupFromRow(row);
    };
    switch (ref) {
      case 'latest':
      case 'last':
        return pick('DONE', 'DESC');
      case 'oldest':
      case 'first':
        return pick('DONE', 'ASC');
      case 'last-failed':
        return pick('FAILED', 'DESC');
    }
    const byId = this.getBackup(server, ref);
    if (byId !== null) return byId;
    const row = this.stmt('SELECT * FROM backups WHERE server = ? AND name = ?', true).get(server, ref) as
      | BackupRow
      | undefined;
    return row === undefined ? null : backupFromRow(row);
  }

  // ------------------------------------------------------------------ WAL segments

  /**
   * Record an archived segment. Recording the same content twice is harmless ('exists');
   * different content under a known name or position throws WalSegmentConflictError.
   */
  addWalSegment(rec: WalSegmentRecord): 'added' | 'exists' {
    let changes: number;
    try {
      changes = this.stmt(
        `INSERT INTO wal_segments (server, timeline, segno, name, size, stored_size, compression, checksum, archived_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
      ).run(
        rec.server,
        rec.timeline,
        int64(rec.segno, 'segno'),
        rec.name,
        rec.size,
        rec.storedSize,
        rec.compression,
        rec.checksum,
        rec.archivedAt,
      ).changes;
    } catch (err) {
      if (sqliteCode(err) === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw this.unknownServer(rec.server, err);
      throw err;
    }
    if (changes > 0) return 'added';
    const existing =
      (this.stmt('SELECT * FROM wal_segments WHERE server = ? AND timeline = ? AND segno = ?', true).get(
        rec.server,
        rec.timeline,
        rec.segno,
      ) as WalRow | undefined) ??
      (this.stmt('SELECT * FROM wal_segments WHERE server = ? AND name = ?', true).get(rec.server, rec.name) as
        | WalRow
        | undefined);
    const old = walFromRow(existing!);
    if (old.name === rec.name && old.timeline === rec.timeline && old.segno === rec.segno && old.checksum === rec.checksum) {
      return 'exists';
    }
    throw new WalSegmentConflictError(old, rec);
  }

  /**
   * Record many segments in one transaction; returns how many were new. A conflict rolls the
   * whole batch back. Takes any iterable so a rebuild can stream a million rows.
   */
  addWalSegments(recs: Iterable<WalSegmentRecord>): number {
    return this.transaction(() => {
      let added = 0;
      for (const rec of recs) if (this.addWalSegment(rec) === 'added') added++;
      return added;
    });
  }

  getWalSegment(server: string, name: string): WalSegmentRecord | null {
    const row = this.stmt('SELECT * FROM wal_segments WHERE server = ? AND name = ?', true).get(server, name) as
      | WalRow
      | undefined;
    return row === undefined ? null : walFromRow(row);
  }

  /** The newest segment: highest timeline, then highest segno. */
  lastWalSegment(server: string): WalSegmentRecord | null {
    const row = this.stmt(
      'SELECT * FROM wal_segments WHERE server = ? ORDER BY timeline DESC, segno DESC LIMIT 1',
      true,
    ).get(server) as WalRow | undefined;
    return row === undefined ? null : walFromRow(row);
  }

  /** The oldest segment: lowest timeline, then lowest segno. */
  firstWalSegment(server: string): WalSegmentRecord | null {
    const row = this.stmt('SELECT * FROM wal_segments WHERE server = ? ORDER BY timeline, segno LIMIT 1', true).get(
      server,
    ) as WalRow | undefined;
    return row === undefined ? null : walFromRow(row);
  }

  /** Segments ordered by timeline then segno; segno bounds are inclusive. */
  listWalSegments(server: string, opts: ListWalSegmentsOptions = {}): WalSegmentRecord[] {
    const where = ['server = @server'];
    const params: Record<string, SqlValue> = { server };
    if (opts.timeline !== undefined) {
      where.push('timeline = @timeline');
      params.timeline = opts.timeline;
    }
    if (opts.fromSegno !== undefined) {
      where.push('segno >= @fromSegno');
      params.fromSegno = int64(opts.fromSegno, 'fromSegno');
    }
    if (opts.toSegno !== undefined) {
      where.push('segno <= @toSegno');
      params.toSegno = int64(opts.toSegno, 'toSegno');
    }
    let sql = `SELECT * FROM wal_segments WHERE ${where.join(' AND ')} ORDER BY timeline, segno`;
    if (opts.limit !== undefined) {
      sql += ' LIMIT @limit';
      params.limit = opts.limit;
    }
    return (this.stmt(sql, true).all(params) as WalRow[]).map(walFromRow);
  }

  /** Forget segments by file name; returns how many were known. */
  deleteWalSegments(server: string, names: readonly string[]): number {
    const del = this.stmt('DELETE FROM wal_segments WHERE server = ? AND name = ?');
    return this.transaction(() => {
      let n = 0;
      for (const name of names) n += del.run(server, name).changes;
      return n;
    });
  }

  /**
   * A page of a walk in name order over segments whose name sorts before `before` (and after
   * `after`, exclusive): a range scan of the (server, name) index, so a caller can go through a
   * million rows a page at a time instead of holding them all. Names sort as (timeline, segno).
   */
  listWalSegmentsBefore(server: string, before: string, opts: { after?: string; limit: number }): WalSegmentRecord[] {
    const rows = this.stmt(
      `SELECT * FROM wal_segments WHERE server = @server AND name > @after AND name < @before ORDER BY name LIMIT @limit`,
      true,
    ).all({ server, before, after: opts.after ?? '', limit: opts.limit }) as WalRow[];
    return rows.map(walFromRow);
  }

  /** How many segments lie after a position ((timeline, segno) > (t, s)): an index range count. */
  countWalSegmentsAfter(server: string, timeline: number, segno: bigint): number {
    const row = this.stmt(
      'SELECT count(*) AS n FROM wal_segments WHERE server = @server AND (timeline, segno) > (@timeline, @segno)',
    ).get({ server, timeline, segno: int64(segno, 'segno') }) as { n: number };
    return row.n;
  }

  countWalSegments(server: string): number {
    return (this.stmt('SELECT count(*) AS n FROM wal_segments WHERE server = ?').get(server) as { n: number }).n;
  }

  /** Bytes the archived segments take on disk (stored, i.e. compressed, size; as Barman's xlog.db). */
  walSize(server: string): number {
    return (
      this.stmt('SELECT coalesce(sum(stored_size), 0) AS n FROM wal_segments WHERE server = ?').get(server) as {
        n: number;
      }
    ).n;
  }

  private countSegno(server: string, timeline: number, from: bigint, to: bigint): bigint {
    const row = this.stmt(
      'SELECT count(*) AS n FROM wal_segments WHERE server = ? AND timeline = ? AND segno BETWEEN ? AND ?',
      true,
    ).get(server, timeline, from, to) as { n: bigint };
    return row.n;
  }

  /**
   * Contiguous islands of archived segments on a timeline within [from, to] (whole timeline
   * by default), computed in SQL over the (server, timeline, segno) key.
   */
  walRanges(server: string, timeline: number, fromSegno?: bigint, toSegno?: bigint): { ranges: SegnoRange[] } {
    const from = fromSegno === undefined ? 0n : int64(fromSegno, 'fromSegno');
    const to = toSegno === undefined ? MAX_SEGNO : int64(toSegno, 'toSegno');
    if (from > to) return { ranges: [] };
    const bounds = this.stmt(
      `SELECT (SELECT min(segno) FROM wal_segments WHERE server = @server AND timeline = @timeline AND segno >= @from) AS lo,
              (SELECT max(segno) FROM wal_segments WHERE server = @server AND timeline = @timeline AND segno <= @to) AS hi`,
      true,
    ).get({ server, timeline, from, to }) as { lo: bigint | null; hi: bigint | null };
    if (bounds.lo === null || bounds.hi === null || bounds.lo > bounds.hi) return { ranges: [] };
    // Fast path: as many rows as positions means a single island, no window needed.
    const count = this.countSegno(server, timeline, bounds.lo, bounds.hi);
    if (count === bounds.hi - bounds.lo + 1n) return { ranges: [{ from: bounds.lo, to: bounds.hi }] };
    return { ranges: this.islands(server, timeline, bounds.lo, bounds.hi, count) };
  }

  /** Gaps on a timeline within [from, to] (inclusive); an empty list means the range is complete. */
  missingSegments(server: string, timeline: number, fromSegno: bigint, toSegno: bigint): SegnoRange[] {
    const from = int64(fromSegno, 'fromSegno');
    const to = int64(toSegno, 'toSegno');
    if (from > to) return [];
    const count = this.countSegno(server, timeline, from, to);
    if (count === to - from + 1n) return [];
    const gaps: SegnoRange[] = [];
    let next = from;
    for (const island of this.islands(server, timeline, from, to, count)) {
      if (island.from > next) gaps.push({ from: next, to: island.from - 1n });
      next = island.to + 1n;
    }
    if (next <= to) gaps.push({ from: next, to });
    return gaps;
  }

  /**
   * Islands within [from, to] holding `count` rows. The window query costs ~0.6 µs a row, an
   * index range count a tenth of that: so split big incomplete ranges in parts, take complete
   * parts whole on their count, and run the window only where the holes are.
   */
  private islands(server: string, timeline: number, from: bigint, to: bigint, count: bigint): SegnoRange[] {
    const width = to - from + 1n;
    if (count === 0n) return [];
    if (count === width) return [{ from, to }];
    if (count <= ISLAND_WINDOW_ROWS || width <= ISLAND_FANOUT) return this.windowIslands(server, timeline, from, to);
    const out: SegnoRange[] = [];
    const step = (width + ISLAND_FANOUT - 1n) / ISLAND_FANOUT;
    for (let lo = from; lo <= to; lo += step) {
      const hi = lo + step - 1n < to ? lo + step - 1n : to;
      const part = this.islands(server, timeline, lo, hi, this.countSegno(server, timeline, lo, hi));
      for (const island of part) {
        const last = out[out.length - 1];
        if (last !== undefined && last.to + 1n === island.from) last.to = island.to;
        else out.push(island);
      }
    }
    return out;
  }

  /** Gaps-and-islands in SQL: along an island segno - row_number() is constant, so it names the island. */
  private windowIslands(server: string, timeline: number, from: bigint, to: bigint): SegnoRange[] {
    const rows = this.stmt(
      `SELECT min(segno) AS "from", max(segno) AS "to" FROM (
         SELECT segno, segno - row_number() OVER (ORDER BY segno) AS island
         FROM wal_segments
         WHERE server = @server AND timeline = @timeline AND segno BETWEEN @from AND @to
       ) GROUP BY island ORDER BY island`,
      true,
    ).all({ server, timeline, from, to }) as SegnoRange[];
    return rows.map((r) => ({ from: r.from, to: r.to }));
  }

  /** Timelines seen in segments or history files, ascending. */
  listTimelines(server: string): number[] {
    // A skip-scan over the primary key: one index seek per timeline, not a scan of every segment.
    const rows = this.stmt(
      `WITH RECURSIVE tl(t) AS (
         SELECT min(timeline) FROM wal_segments WHERE server = @server
         UNION ALL
         SELECT (SELECT min(timeline) FROM wal_segments WHERE server = @server AND timeline > tl.t)
         FROM tl WHERE tl.t IS NOT NULL
       )
       SELECT t FROM tl WHERE t IS NOT NULL
       UNION
       SELECT tli FROM history_files WHERE server = @server
       ORDER BY 1`,
    ).all({ server }) as { t: number }[];
    return rows.map((r) => r.t);
  }

  // ------------------------------------------------------------------ history files

  /** Record a timeline history file; same content twice is harmless, different content throws. */
  addHistoryFile(rec: HistoryFileRecord): 'added' | 'exists' {
    let changes: number;
    try {
      changes = this.stmt(
        `INSERT INTO history_files (server, tli, name, parent_tli, switch_lsn, checksum, archived_at)
         VALUES (@server, @tli, @name, @parentTli, @switchLsn, @checksum, @archivedAt)
         ON CONFLICT DO NOTHING`,
      ).run({ ...rec, switchLsn: int64(rec.switchLsn, 'switchLsn') }).changes;
    } catch (err) {
      if (sqliteCode(err) === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw this.unknownServer(rec.server, err);
      throw err;
    }
    if (changes > 0) return 'added';
    const old = this.getHistoryFile(rec.server, rec.tli)!;
    if (old.checksum === rec.checksum && old.name === rec.name) return 'exists';
    throw new HistoryFileConflictError(old, rec);
  }

  getHistoryFile(server: string, tli: number): HistoryFileRecord | null {
    const row = this.stmt('SELECT * FROM history_files WHERE server = ? AND tli = ?', true).get(server, tli) as
      | HistoryRow
      | undefined;
    return row === undefined ? null : historyFromRow(row);
  }

  listHistoryFiles(server: string): HistoryFileRecord[] {
    return (this.stmt('SELECT * FROM history_files WHERE server = ? ORDER BY tli', true).all(server) as HistoryRow[]).map(
      historyFromRow,
    );
  }

  // ------------------------------------------------------------------ receiver heartbeat

  setHeartbeat(hb: ReceiverHeartbeat): void {
    try {
      this.stmt(
        `INSERT INTO receiver_heartbeats (server, pid, state, received_lsn, flushed_lsn, timeline, message, updated_at)
         VALUES (@server, @pid, @state, @receivedLsn, @flushedLsn, @timeline, @message, @updatedAt)
         ON CONFLICT (server) DO UPDATE SET pid = excluded.pid, state = excluded.state,
           received_lsn = excluded.received_lsn, flushed_lsn = excluded.flushed_lsn, timeline = excluded.timeline,
           message = excluded.message, updated_at = excluded.updated_at`,
      ).run({
        ...hb,
        receivedLsn: int64OrNull(hb.receivedLsn, 'receivedLsn'),
        flushedLsn: int64OrNull(hb.flushedLsn, 'flushedLsn'),
      });
    } catch (err) {
      if (sqliteCode(err) === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw this.unknownServer(hb.server, err);
      throw err;
    }
  }

  getHeartbeat(server: string): ReceiverHeartbeat | null {
    const row = this.stmt('SELECT * FROM receiver_heartbeats WHERE server = ?', true).get(server) as
      | HeartbeatRow
      | undefined;
    return row === undefined ? null : heartbeatFromRow(row);
  }
}
