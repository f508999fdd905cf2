// Catalog record types: the rows of the repository index, in the DBA's words.
// LSNs and segment numbers are bigint; sizes are numbers; times are ISO-8601 strings
// with an offset. These are plain data: the catalog maps them to and from SQL columns.

export type BackupStatus = 'STARTED' | 'WAITING_FOR_WALS' | 'DONE' | 'FAILED' | 'DELETING';
export type KeepTarget = 'full' | 'standalone';

export const BACKUP_STATUSES: readonly BackupStatus[] = [
  'STARTED',
  'WAITING_FOR_WALS',
  'DONE',
  'FAILED',
  'DELETING',
];

export interface TablespaceRecord {
  name: string;
  oid: number;
  location: string;
}

export interface ServerRecord {
  name: string;
  systemId: string | null;
  pgVersion: number | null;
  walSegmentSize: number | null;
  createdAt: string;
  updatedAt: string;
}

/** What `upsertServer` takes: the identity of a server as far as the catalog cares. */
export interface ServerIdentity {
  name: string;
  systemId: string | null;
  pgVersion: number | null;
  walSegmentSize: number | null;
}

export interface BackupRecord {
  server: string;
  backupId: string;
  name: string | null;
  status: BackupStatus;
  beginTime: string | null;
  endTime: string | null;
  beginLsn: bigint | null;
  endLsn: bigint | null;
  beginWal: string | null;
  endWal: string | null;
  timeline: number | null;
  pgVersion: number | null;
  systemId: string | null;
  walSegmentSize: number | null;
  size: number;
  deduplicatedSize: number;
  clusterSize: number | null;
  compression: string | null;
  keep: KeepTarget | null;
  error: string | null;
  serverTimezone: string | null;
  tablespaces: TablespaceRecord[];
  /** Process that runs the backup while it is STARTED. */
  pid: number | null;
  /** Any extra backup.info fields (must be JSON-serialisable). */
  info: Record<string, unknown>;
}

/** What `insertBackup` takes: identity and status are required, the rest defaults to null/0/empty. */
export type NewBackupRecord = Pick<BackupRecord, 'server' | 'backupId' | 'status'> &
  Partial<Omit<BackupRecord, 'server' | 'backupId' | 'status'>>;

/** What `updateBackup` takes: any field but the key. */
export type BackupPatch = Partial<Omit<BackupRecord, 'server' | 'backupId'>>;

export interface WalSegmentRecord {
  server: string;
  timeline: number;
  segno: bigint;
  name: string;
  size: number;
  storedSize: number;
  compression: string | null;
  /** SHA-256 of the uncompressed content. */
  checksum: string;
  archivedAt: string;
}

export interface HistoryFileRecord {
  server: string;
  tli: number;
  name: string;
  parentTli: number;
  switchLsn: bigint;
  checksum: string;
  archivedAt: string;
}

export interface ReceiverHeartbeat {
  server: string;
  pid: number;
  state: string;
  receivedLsn: bigint | null;
  flushedLsn: bigint | null;
  timeline: number | null;
  message: string | null;
  updatedAt: string;
}

/** An inclusive run of segment numbers on one timeline. */
export interface SegnoRange {
  from: bigint;
  to: bigint;
}

export interface ListWalSegmentsOptions {
  timeline?: number;
  fromSegno?: bigint;
  toSegno?: bigint;
  limit?: number;
}

export interface ListBackupsOptions {
  status?: BackupStatus[];
}

export interface CatalogOpenOptions {
  readonly?: boolean;
}
