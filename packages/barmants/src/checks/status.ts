/*
 * `status`: a server's live state in one object (JSON: snake_case, sizes in bytes, ISO times)
 * and Barman's `\tKey: value` console lines built from it. Pure: facts and settings in.
 */
import { formatLsn } from 'pg-replication';
import type { ServerConfig } from '../config/index.js';
import { humanDuration, humanSize } from '../output/index.js';
import { describePolicy } from '../retention/index.js';
import { nextScheduled } from './schedule.js';
import type { ServerFacts } from './types.js';

export interface ServerStatus {
  server: string;
  description: string | null;
  active: boolean;
  pg_version: string | null;
  pg_version_num: number | null;
  /** 'in production' | 'in archive recovery' (pg_controldata's words); null when unreachable */
  cluster_state: string | null;
  postgres_error: string | null;
  data_directory: string | null;
  current_data_size_bytes: number | null;
  current_wal: string | null;
  current_lsn: string | null;
  last_archived_wal: string | null;
  last_archived_at: string | null;
  archived_wal_count: number;
  archived_wal_size_bytes: number;
  /** segments per hour over the last hour (or since the first segment when younger) */
  wal_rate_per_hour: number | null;
  receiver: {
    state: string;
    pid: number | null;
    updated_at: string | null;
    flushed_lsn: string | null;
    /** bytes between the server's current LSN and what the receiver fsynced */
    lag_bytes: number | null;
    message: string | null;
    server_view: string | null;
  };
  slot: { name: string; exists: boolean | null; active: boolean | null; restart_lsn: string | null; wal_status: string | null; retained_bytes: number | null } | null;
  retention_policy: string | null;
  minimum_redundancy: { required: number; have: number; satisfied: boolean };
  backups_count: number;
  failed_backups_count: number;
  first_backup: string | null;
  last_backup: string | null;
  last_backup_end_time: string | null;
  next_scheduled_backup: string | null;
}

function isoLocal(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const pad = (n: number) => String(Math.floor(Math.abs(n))).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${sign}${pad(off / 60)}:${pad(off % 60)}`;
}

export type StatusSettings = Pick<ServerConfig, 'name' | 'description' | 'active' | 'slotName' | 'streamingArchiver' | 'retentionPolicy' | 'minimumRedundancy' | 'backupSchedule'>;

export function buildStatus(f: ServerFacts, c: StatusSettings): ServerStatus {
  const sql = f.sql.ok ? f.sql : null;
  const done = f.repo.backups.filter((b) => b.status === 'DONE');
  const hb = f.repo.heartbeat;
  const current = sql?.currentLsn ?? (f.streaming.ok ? f.streaming.xlogPos : null);
  const lag = current !== null && hb?.flushedLsn ? Number(current > hb.flushedLsn ? current - hb.flushedLsn : 0n) : null;
  const receiverState = !c.streamingArchiver
    ? 'disabled (streaming_archiver = off)'
    : !f.repo.receiverLock
      ? 'not running'
      : (hb?.state ?? 'starting');
  const rate = f.repo.walRate ? Math.round((f.repo.walRate.segments * 3600 * 100) / f.repo.walRate.windowSec) / 100 : null;
  const next = c.backupSchedule ? nextScheduled(c.backupSchedule, f.now) : null;
  return {
    server: c.name,
    description: c.description,
    active: c.active,
    pg_version: sql?.versionText ?? null,
    pg_version_num: sql?.versionNum ?? null,
    cluster_state: sql ? (sql.inRecovery ? 'in archive recovery' : 'in production') : null,
    postgres_error: f.sql.ok ? null : f.sql.error,
    data_directory: sql?.dataDirectory ?? null,
    current_data_size_bytes: sql?.dataSizeBytes ?? null,
    current_wal: sql?.currentWal ?? null,
    current_lsn: current !== null ? formatLsn(current) : null,
    last_archived_wal: f.repo.lastWal?.name ?? null,
    last_archived_at: f.repo.lastWal?.archivedAt ?? null,
    archived_wal_count: f.repo.walCount,
    archived_wal_size_bytes: f.repo.walBytes,
    wal_rate_per_hour: rate,
    receiver: {
      state: receiverState,
      pid: f.repo.receiverLock?.pid ?? null,
      updated_at: hb?.updatedAt ?? null,
      flushed_lsn: hb?.flushedLsn ? formatLsn(hb.flushedLsn) : null,
      lag_bytes: f.repo.receiverLock ? lag : null,
      message: hb?.message ?? null,
      server_view: sql?.receiverConnection ? `${sql.receiverConnection.state}${sql.receiverConnection.sync ? ` (${sql.receiverConnection.sync})` : ''}` : null,
    },
    slot: c.slotName
      ? {
          name: c.slotName,
          exists: sql ? sql.slotExists : null,
          active: sql?.slot?.active ?? null,
          restart_lsn: sql?.slot?.restartLsn ? formatLsn(sql.slot.restartLsn) : null,
          wal_status: sql?.slot?.walStatus ?? null,
          retained_bytes: sql?.slot?.retainedBytes ?? null,
        }
      : null,
    retention_policy: c.retentionPolicy ? describePolicy(c.retentionPolicy) : null,
    minimum_redundancy: { required: c.minimumRedundancy, have: done.length, satisfied: done.length >= c.minimumRedundancy },
    backups_count: done.length,
    failed_backups_count: f.repo.backups.filter((b) => b.status === 'FAILED').length,
    first_backup: done[0]?.backupId ?? null,
    last_backup: done.at(-1)?.backupId ?? null,
    last_backup_end_time: done.at(-1)?.endTime ?? null,
    next_scheduled_backup: next ? isoLocal(next) : null,
  };
}

function ago(now: Date, iso: string | null): string {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? '' : ` (${humanDuration(Math.max(0, (now.getTime() - t) / 1000))} ago)`;
}

/** Barman's status lines (`\tKey: value`), with barmants' additions. */
export function statusLines(s: ServerStatus, now: Date): string[] {
  const v = (x: string | number | null | undefined): string => (x === null || x === undefined ? '-' : String(x));
  const rows: [string, string][] = [
    ['Description', v(s.description)],
    ['Active', s.active ? 'True' : 'False'],
    ['PostgreSQL version', s.pg_version ?? `FAILED trying to get PostgreSQL version${s.postgres_error ? ` (${s.postgres_error})` : ''}`],
  ];
  if (s.pg_version !== null) {
    rows.push(['Cluster state', v(s.cluster_state)]);
    rows.push(['Current data size', s.current_data_size_bytes === null ? '-' : humanSize(s.current_data_size_bytes)]);
    rows.push(['PostgreSQL Data directory', v(s.data_directory)]);
    rows.push(['Current WAL segment', v(s.current_wal)]);
  }
  rows.push(['Current LSN', v(s.current_lsn)]);
  rows.push(['Last archived WAL', s.last_archived_wal ? `${s.last_archived_wal}, at ${s.last_archived_at}${ago(now, s.last_archived_at)}` : 'none']);
  rows.push(['Archived WAL', `${s.archived_wal_count} segments, ${humanSize(s.archived_wal_size_bytes)}`]);
  rows.push(['WAL archiving rate', s.wal_rate_per_hour === null ? '-' : `${s.wal_rate_per_hour}/hour`]);
  const r = s.receiver;
  rows.push(['WAL receiver', `${r.state}${r.pid ? ` (pid ${r.pid})` : ''}${r.message ? `: ${r.message}` : ''}`]);
  if (r.lag_bytes !== null) rows.push(['WAL receiver lag', `${humanSize(r.lag_bytes)} (flushed up to ${v(r.flushed_lsn)})`]);
  if (s.slot) {
    const sl = s.slot;
    const state = sl.exists === null ? 'unknown' : !sl.exists ? 'missing' : `${sl.active ? 'active' : 'inactive'}, restart_lsn ${v(sl.restart_lsn)}, wal_status ${v(sl.wal_status)}${sl.retained_bytes !== null ? `, retains ${humanSize(sl.retained_bytes)}` : ''}`;
    rows.push([`Replication slot`, `${sl.name}: ${state}`]);
  }
  rows.push(['Retention policies', s.retention_policy ? `enforced (mode: auto, retention: ${s.retention_policy}, WAL retention: MAIN)` : 'not enforced']);
  rows.push(['No. of available backups', String(s.backups_count)]);
  rows.push(['First available backup', v(s.first_backup)]);
  rows.push(['Last available backup', v(s.last_backup)]);
  if (s.failed_backups_count) rows.push(['Failed backups', String(s.failed_backups_count)]);
  const m = s.minimum_redundancy;
  rows.push(['Minimum redundancy requirements', `${m.satisfied ? 'satisfied' : 'FAILED'} (${m.have}/${m.required})`]);
  rows.push(['Next scheduled backup', v(s.next_scheduled_backup)]);
  return rows.map(([k, val]) => `\t${k}: ${val}`);
}
