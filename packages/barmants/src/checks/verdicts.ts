/*
 * The checks themselves: one pure function each, from a server's facts and settings to
 * OK / WARNING / FAILED with Barman's wording where Barman has the same check. A function returns
 * null when the check does not apply (no slot configured, no streaming archiver), as Barman then
 * prints no line. WARNING marks near-threshold conditions; consoles print it as Barman prints its
 * own warnings, `OK (WARNING: ...)`.
 */
import type { ServerConfig } from '../config/index.js';
import { humanDuration, humanSize } from '../output/index.js';
import { describePolicy, parseCatalogTime } from '../retention/index.js';
import type { BackupFact, CheckResult, CheckStatus, ServerFacts } from './types.js';

export type CheckSettings = Pick<
  ServerConfig,
  | 'name'
  | 'active'
  | 'streamingArchiver'
  | 'slotName'
  | 'retentionPolicy'
  | 'minimumRedundancy'
  | 'lastBackupMaximumAgeSec'
  | 'lastBackupMinimumSizeBytes'
  | 'lastWalMaximumAgeSec'
  | 'minFreeSpaceBytes'
  | 'slotRetainedWalWarningBytes'
  | 'slotRetainedWalCriticalBytes'
  | 'walCompression'
  | 'backupCompression'
>;

/** Fraction of a maximum age (or of a slot limit) past which a check warns before it fails. */
export const NEAR_THRESHOLD = 0.8;
/** A receiver heartbeat older than this means the receiver is stuck or gone (it beats every 2 s). */
export const HEARTBEAT_STALE_SEC = 30;
/** Free space below min_free_space × this warns. */
export const FREE_SPACE_MARGIN = 1.2;
export const SUPPORTED_MAJORS = { min: 14, max: 18 } as const;
/** Default slot thresholds as fractions of max_slot_wal_keep_size, when that is set. */
export const SLOT_KEEP_WARNING = 0.5;
export const SLOT_KEEP_CRITICAL = NEAR_THRESHOLD;

function r(name: string, status: CheckStatus | boolean, detail = '', perfdata?: CheckResult['perfdata']): CheckResult {
  const s: CheckStatus = typeof status === 'boolean' ? (status ? 'OK' : 'FAILED') : status;
  return perfdata ? { name, status: s, detail, perfdata } : { name, status: s, detail };
}

/** Backups that count as "available": DONE. The newest is Barman's "last backup". */
function doneBackups(f: ServerFacts): BackupFact[] {
  return f.repo.backups.filter((b) => b.status === 'DONE');
}

export function lastDoneBackup(f: ServerFacts): BackupFact | null {
  const done = doneBackups(f);
  return done.length ? done[done.length - 1]! : null;
}

function ageSec(now: Date, iso: string | null): number | null {
  const t = parseCatalogTime(iso);
  return t === null ? null : Math.max(0, (now.getTime() - t) / 1000);
}

// ------------------------------------------------------------------------------ PostgreSQL

export function checkPostgres(f: ServerFacts): CheckResult {
  if (!f.sql.ok) return r('PostgreSQL', false, f.sql.error);
  return r('PostgreSQL', true);
}

export function checkBackupPrivileges(f: ServerFacts): CheckResult | null {
  if (!f.sql.ok) return null;
  return f.sql.backupPrivileges
    ? r('superuser or standard user with backup privileges', true)
    : r('superuser or standard user with backup privileges', false, 'privileges for PostgreSQL backup functions are required (see documentation)');
}

export function checkStreaming(f: ServerFacts): CheckResult {
  if (!f.streaming.ok) return r('PostgreSQL streaming', false, f.streaming.error);
  return r('PostgreSQL streaming', true);
}

export function checkWalLevel(f: ServerFacts): CheckResult | null {
  if (!f.sql.ok || f.sql.walLevel === null) return null;
  return f.sql.walLevel === 'minimal'
    ? r('wal_level', false, "please set it to a higher level than 'minimal'")
    : r('wal_level', true);
}

/**
 * Slot: exists, active, not lost, and the WAL it holds back on the server below thresholds.
 * Without explicit slot_retained_wal_warning/critical, and with max_slot_wal_keep_size set, the
 * thresholds are 50% / 80% of that limit: past it PostgreSQL invalidates the slot and the
 * archive gets a hole.
 */
export function slotThresholds(c: CheckSettings, maxKeepBytes: number | null): { warning: number | null; critical: number | null } {
  return {
    warning: c.slotRetainedWalWarningBytes ?? (maxKeepBytes !== null ? Math.floor(maxKeepBytes * SLOT_KEEP_WARNING) : null),
    critical: c.slotRetainedWalCriticalBytes ?? (maxKeepBytes !== null ? Math.floor(maxKeepBytes * SLOT_KEEP_CRITICAL) : null),
  };
}

export function checkReplicationSlot(f: ServerFacts, c: CheckSettings): CheckResult | null {
  const name = 'replication slot';
  if (!c.slotName) return null;
  if (!f.sql.ok) return r(name, false, `cannot read pg_replication_slots: ${f.sql.error}`);
  const slot = f.sql.slot;
  if (!c.streamingArchiver) {
    // As Barman: a slot nobody streams from only deserves a warning (it still holds WAL back).
    if (slot && slot.restartLsn !== null) {
      return r(name, 'WARNING', `slot '${c.slotName}' is ${slot.active ? 'active' : 'initialised'} but not required by the current config`);
    }
    return r(name, true);
  }
  if (!slot) return r(name, false, `replication slot '${c.slotName}' doesn't exist. Please execute 'barmants receive-wal --create-slot ${c.name}'`);
  if (slot.walStatus === 'lost') {
    return r(name, false, `slot '${c.slotName}' has lost WAL it needed (wal_status lost): run 'barmants receive-wal --reset ${c.name}' and take a new backup`);
  }
  if (slot.restartLsn === null) return r(name, false, `slot '${c.slotName}' not initialised: is 'receive-wal' running?`);
  if (!slot.active) return r(name, false, `slot '${c.slotName}' not active: is 'receive-wal' running?`);
  const { warning, critical } = slotThresholds(c, f.sql.maxSlotWalKeepSizeBytes);
  const retained = slot.retainedBytes;
  const perf = retained === null ? undefined : [{ label: 'slot_retained_wal', value: retained, uom: 'B', warn: warning ?? undefined, crit: critical ?? undefined, min: 0 }];
  if (retained !== null) {
    const limits = [warning !== null ? `warning ${humanSize(warning)}` : null, critical !== null ? `critical ${humanSize(critical)}` : null].filter(Boolean).join(', ');
    const detail = `slot '${c.slotName}' retains ${humanSize(retained)} of WAL${limits ? ` (${limits})` : ''}`;
    if (critical !== null && retained >= critical) return r(name, false, detail, perf);
    if (warning !== null && retained >= warning) return r(name, 'WARNING', detail, perf);
    if (slot.walStatus === 'unreserved') return r(name, 'WARNING', `slot '${c.slotName}' wal_status is unreserved: WAL it needs may be removed at the next checkpoint`, perf);
  }
  return r(name, true, '', perf);
}

// ------------------------------------------------------------------------------ repository

export function checkDirectories(f: ServerFacts): CheckResult {
  for (const d of f.repo.directories) {
    if (d.error) return r('directories', false, `${d.path}: ${d.error}`);
    if (!d.exists) return r('directories', false, `${d.path}: does not exist`);
    if (!d.writable) return r('directories', false, `${d.path}: not writable`);
  }
  const loose = f.repo.directories.find((d) => d.mode !== null && (d.mode & 0o077) !== 0);
  if (loose) return r('directories', 'WARNING', `${loose.path}: mode ${loose.mode!.toString(8).padStart(4, '0')}, expected 0700`);
  return r('directories', true);
}

export function checkRetentionSettings(c: CheckSettings): CheckResult {
  const p = c.retentionPolicy;
  if (p && p.kind === 'redundancy' && p.count < c.minimumRedundancy) {
    return r('retention policy settings', 'WARNING', `${describePolicy(p)} is below minimum_redundancy ${c.minimumRedundancy}: ${c.minimumRedundancy} backups are kept`);
  }
  return r('retention policy settings', true);
}

export function checkBackupMaximumAge(f: ServerFacts, c: CheckSettings): CheckResult {
  const name = 'backup maximum age';
  const max = c.lastBackupMaximumAgeSec;
  if (max === null) return r(name, true, 'no last_backup_maximum_age provided');
  const last = lastDoneBackup(f);
  const age = last ? ageSec(f.now, last.endTime ?? last.beginTime) : null;
  if (age === null) return r(name, false, `interval provided: ${humanDuration(max)}, latest backup age: No available backups`);
  const perf = [{ label: 'last_backup_age', value: Math.round(age), uom: 's', warn: Math.round(max * NEAR_THRESHOLD), crit: max, min: 0 }];
  const detail = `interval provided: ${humanDuration(max)}, latest backup age: ${humanDuration(age)}`;
  if (age > max) return r(name, false, detail, perf);
  if (age > max * NEAR_THRESHOLD) return r(name, 'WARNING', detail, perf);
  return r(name, true, detail, perf);
}

export function checkBackupMinimumSize(f: ServerFacts, c: CheckSettings): CheckResult {
  const name = 'backup minimum size';
  const size = lastDoneBackup(f)?.size ?? 0;
  const min = c.lastBackupMinimumSizeBytes;
  const perf = [{ label: 'last_backup_size', value: size, uom: 'B', crit: min ?? undefined, min: 0 }];
  if (min === null) return r(name, true, humanSize(size), perf);
  const ok = lastDoneBackup(f) !== null && size >= min;
  return r(name, ok, `last backup size ${humanSize(size)} ${ok ? '>' : '<'} ${humanSize(min)} minimum`, perf);
}

export function checkWalMaximumAge(f: ServerFacts, c: CheckSettings): CheckResult {
  const name = 'wal maximum age';
  const max = c.lastWalMaximumAgeSec;
  if (max === null) return r(name, true, 'no last_wal_maximum_age provided');
  const age = f.repo.lastWal ? ageSec(f.now, f.repo.lastWal.archivedAt) : null;
  if (age === null) return r(name, false, 'No WAL files archived for last backup');
  const perf = [{ label: 'last_wal_age', value: Math.round(age), uom: 's', warn: Math.round(max * NEAR_THRESHOLD), crit: max, min: 0 }];
  const detail = `interval provided: ${humanDuration(max)}, latest wal age: ${humanDuration(age)}`;
  if (age > max) return r(name, false, detail, perf);
  if (age > max * NEAR_THRESHOLD) return r(name, 'WARNING', detail, perf);
  return r(name, true, detail, perf);
}

/** `available` says whether each configured codec can be instantiated here (native modules). */
export function checkCompression(c: CheckSettings, available: (codec: string) => string | null): CheckResult {
  for (const [what, comp] of [['compression', c.walCompression], ['backup_compression', c.backupCompression]] as const) {
    if (comp.codec === 'none') continue;
    const err = available(comp.codec);
    if (err) return r('compression settings', false, `${what} = ${comp.codec}: ${err}`);
  }
  return r('compression settings', true);
}

export function checkFailedBackups(f: ServerFacts): CheckResult {
  const n = f.repo.backups.filter((b) => b.status === 'FAILED').length;
  return r('failed backups', n === 0, `there are ${n} failed backups`, [{ label: 'failed_backups', value: n, uom: '', crit: 1, min: 0 }]);
}

export function checkMinimumRedundancy(f: ServerFacts, c: CheckSettings): CheckResult {
  const n = doneBackups(f).length;
  return r('minimum redundancy requirements', n >= c.minimumRedundancy, `have ${n} non-incremental backups, expected at least ${c.minimumRedundancy}`);
}

/** The live server (both connections), identity.json and the catalog must name one cluster. */
export function checkSystemId(f: ServerFacts): CheckResult {
  const name = 'systemid coherence';
  const fromSql = f.sql.ok ? f.sql.systemId : null;
  const fromStream = f.streaming.ok ? f.streaming.systemId : null;
  const { identitySystemId: fromFile, catalogSystemId: fromCatalog, identityPath, identityError } = f.repo;
  if (identityError) return r(name, false, identityError);
  if (fromSql && fromStream && fromSql !== fromStream) {
    return r(name, false, 'is the streaming DSN targeting the same server of the PostgreSQL connection string?');
  }
  if (fromFile && fromCatalog && fromFile !== fromCatalog) {
    return r(name, false, `identity.json names system ${fromFile} but the catalog records ${fromCatalog}: run 'barmants rebuild-catalog ${f.server}'`);
  }
  const live = fromStream ?? fromSql;
  if (fromFile) {
    const stray = f.repo.backups.find((b) => b.systemId !== null && b.systemId !== fromFile);
    if (stray) return r(name, false, `backup ${stray.backupId} belongs to system ${stray.systemId}, not ${fromFile}`);
  }
  if (!live) return r(name, true, 'no system Id available');
  if (!fromFile) return r(name, true, 'no system Id stored on disk');
  if (live !== fromFile) return r(name, false, `the system Id of the connected PostgreSQL server changed, stored in "${identityPath}"`);
  return r(name, true);
}

/** A receiver is running when its lock has a live owner and its heartbeat is recent and healthy. */
export function checkReceiveWal(f: ServerFacts, c: CheckSettings): CheckResult | null {
  const name = 'receive-wal running';
  if (!c.streamingArchiver) return null;
  const lock = f.repo.receiverLock;
  const hb = f.repo.heartbeat;
  if (!lock) return r(name, false, `no receive-wal process: start the daemon or 'barmants receive-wal ${c.name}'`);
  const age = hb ? ageSec(f.now, hb.updatedAt) : null;
  if (!hb || age === null) return r(name, false, `receive-wal (pid ${lock.pid}) has not reported yet`);
  if (age > HEARTBEAT_STALE_SEC) return r(name, false, `receive-wal (pid ${lock.pid}) last reported ${humanDuration(age)} ago: is it stuck?`);
  if (hb.state === 'retrying' || hb.state === 'failed' || hb.state === 'stopped') {
    return r(name, false, `receive-wal is ${hb.state}${hb.message ? `: ${hb.message}` : ''}`);
  }
  return r(name, true);
}

export function checkWalContinuity(f: ServerFacts): CheckResult {
  const name = 'WAL continuity';
  if (f.repo.walCheckedFrom === null) return r(name, true, 'no WAL archived yet');
  const gaps = f.repo.walGaps;
  if (gaps.length === 0) return r(name, true, `no gap since ${f.repo.walCheckedFrom}`);
  const missing = gaps.reduce((n, g) => n + g.count, 0);
  const first = gaps[0]!;
  return r(name, false, `${missing} WAL segment${missing === 1 ? '' : 's'} missing since ${f.repo.walCheckedFrom}, first gap ${first.from}${first.count > 1 ? `..${first.to}` : ''}`,
    [{ label: 'missing_wal_segments', value: missing, uom: '', crit: 1, min: 0 }]);
}

/** Summarises errors/ by reason (the last name component, as `setAside` writes it). */
export function summariseErrorFiles(files: string[]): string {
  const counts = new Map<string, number>();
  for (const f of files) {
    const m = /\.\d{8}T\d{6}Z\.([A-Za-z0-9_-]+)(?:\.\d+)?$/.exec(f);
    const reason = m ? m[1]! : 'unknown failure';
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}: ${n}`).join(', ');
}

export function checkArchiverErrors(f: ServerFacts): CheckResult {
  const n = f.repo.errorFiles.length;
  return r('archiver errors', n === 0, n ? summariseErrorFiles(f.repo.errorFiles) : '');
}

export function checkFreeSpace(f: ServerFacts, c: CheckSettings): CheckResult {
  const name = 'free disk space';
  const free = f.repo.freeBytes;
  const min = c.minFreeSpaceBytes;
  if (free === null) return r(name, min === null, 'cannot read the free space of the repository filesystem');
  const perf = [{ label: 'free_space', value: free, uom: 'B', warn: min === null ? undefined : Math.round(min * FREE_SPACE_MARGIN), crit: min ?? undefined, min: 0, max: f.repo.totalBytes ?? undefined }];
  if (min === null) return r(name, true, `${humanSize(free)} free`, perf);
  const detail = `${humanSize(free)} free, min_free_space ${humanSize(min)}`;
  if (free < min) return r(name, false, detail, perf);
  if (free < min * FREE_SPACE_MARGIN) return r(name, 'WARNING', detail, perf);
  return r(name, true, detail, perf);
}

export function checkPgVersion(f: ServerFacts): CheckResult | null {
  if (!f.sql.ok) return null;
  const major = Math.floor(f.sql.versionNum / 10000);
  const ok = major >= SUPPORTED_MAJORS.min && major <= SUPPORTED_MAJORS.max;
  return r('PostgreSQL version supported', ok, ok ? f.sql.versionText : `PostgreSQL ${f.sql.versionText} is not supported (barmants supports ${SUPPORTED_MAJORS.min} to ${SUPPORTED_MAJORS.max})`);
}

/** Printed only when the catalog could not be read for this server (like Barman's `WAL archive`). */
export function checkCatalog(f: ServerFacts): CheckResult | null {
  return f.repo.error ? r('catalog', false, f.repo.error) : null;
}

/** Every check in Barman's order, then barmants' own; not-applicable ones left out. */
export function evaluateChecks(f: ServerFacts, c: CheckSettings, codecAvailable: (codec: string) => string | null = () => null): CheckResult[] {
  const all: (CheckResult | null)[] = [
    checkCatalog(f),
    checkPostgres(f),
    checkBackupPrivileges(f),
    checkStreaming(f),
    checkWalLevel(f),
    checkReplicationSlot(f, c),
    checkDirectories(f),
    checkRetentionSettings(c),
    checkBackupMaximumAge(f, c),
    checkBackupMinimumSize(f, c),
    checkWalMaximumAge(f, c),
    checkCompression(c, codecAvailable),
    checkFailedBackups(f),
    checkMinimumRedundancy(f, c),
    checkSystemId(f),
    checkReceiveWal(f, c),
    checkArchiverErrors(f),
    checkWalContinuity(f),
    checkFreeSpace(f, c),
    checkPgVersion(f),
  ];
  return all.filter((x): x is CheckResult => x !== null);
}
