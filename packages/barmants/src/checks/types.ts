/*
 * The data of monitoring: facts gathered once per server (SQL, replication connection, catalog,
 * filesystem) and the check results computed from them. Plain data, so the verdicts are pure
 * functions and the renderers (console, JSON, Nagios) can be tested without PostgreSQL.
 */

export type CheckStatus = 'OK' | 'WARNING' | 'FAILED';

/** One Nagios performance value; the renderer prefixes the label with the server name. */
export interface Perfdata {
  label: string;
  value: number;
  /** '' | 's' | 'B' | '%' | 'c' */
  uom: string;
  warn?: number;
  crit?: number;
  min?: number;
  max?: number;
}

export interface CheckResult {
  /** Barman's check name where it has one ('backup maximum age') */
  name: string;
  status: CheckStatus;
  /** what the console shows in parentheses; '' for none */
  detail: string;
  perfdata?: Perfdata[];
}

/** What a remote fact source said: either the values, or why they could not be read. */
export interface Unreachable {
  ok: false;
  error: string;
}

export interface SlotFacts {
  name: string;
  active: boolean;
  restartLsn: bigint | null;
  /** pg_replication_slots.wal_status: reserved, extended, unreserved, lost */
  walStatus: string | null;
  /** bytes between restart_lsn and the current position: WAL the slot holds back */
  retainedBytes: number | null;
}

export interface SqlFacts {
  ok: true;
  versionNum: number;
  versionText: string;
  superuser: boolean;
  /** superuser, or may run pg_switch_wal() and pg_create_restore_point() */
  backupPrivileges: boolean;
  walLevel: string | null;
  inRecovery: boolean;
  systemId: string | null;
  dataDirectory: string | null;
  currentLsn: bigint | null;
  currentWal: string | null;
  dataSizeBytes: number | null;
  /** max_slot_wal_keep_size in bytes; null when -1 (unlimited) or unknown */
  maxSlotWalKeepSizeBytes: number | null;
  /** null when slot_name is not configured; undefined-slot = exists false */
  slot: SlotFacts | null;
  slotExists: boolean | null;
  /** pg_stat_replication row of the WAL receiver (application_name = streaming_archiver_name) */
  receiverConnection: { state: string; flushLsn: bigint | null; sync: string | null } | null;
}

export interface StreamingFacts {
  ok: true;
  systemId: string;
  timeline: number;
  xlogPos: bigint;
}

export interface BackupFact {
  backupId: string;
  name: string | null;
  status: string;
  beginTime: string | null;
  endTime: string | null;
  beginWal: string | null;
  timeline: number | null;
  systemId: string | null;
  walSegmentSize: number | null;
  size: number;
}

export interface DirectoryFact {
  path: string;
  exists: boolean;
  writable: boolean;
  /** permission bits, e.g. 0o700 */
  mode: number | null;
  error: string | null;
}

export interface RepositoryFacts {
  /** identity.json's system identifier; null when not recorded yet */
  identitySystemId: string | null;
  identityPath: string;
  identityError: string | null;
  /** servers.system_id in the catalog */
  catalogSystemId: string | null;
  walSegmentSize: number | null;
  /** every backup, oldest first */
  backups: BackupFact[];
  walCount: number;
  walBytes: number;
  firstWal: { name: string; archivedAt: string } | null;
  lastWal: { name: string; archivedAt: string } | null;
  /** segments archived during the window below, and its length in seconds */
  walRate: { segments: number; windowSec: number } | null;
  /** holes on the timelines since the oldest backup's begin_wal (or the first segment) */
  walGaps: { timeline: number; from: string; to: string; count: number }[];
  /** where continuity was checked from; null when there is nothing archived */
  walCheckedFrom: string | null;
  heartbeat: { pid: number; state: string; flushedLsn: bigint | null; receivedLsn: bigint | null; message: string | null; updatedAt: string } | null;
  /** live owner of the receive-wal lock */
  receiverLock: { pid: number; host: string; since: string } | null;
  directories: DirectoryFact[];
  errorFiles: string[];
  freeBytes: number | null;
  totalBytes: number | null;
  /** catalog or filesystem failure while gathering, if any */
  error: string | null;
}

/** Everything known about one server at one instant. */
export interface ServerFacts {
  server: string;
  now: Date;
  sql: SqlFacts | Unreachable;
  streaming: StreamingFacts | Unreachable;
  repo: RepositoryFacts;
}

export interface ServerCheckReport {
  server: string;
  active: boolean;
  checks: CheckResult[];
}
