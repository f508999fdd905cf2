/*
 * Recovery planning: which backup to restore, which timeline to follow and exactly which WAL
 * segments (per timeline) the restore needs, checked against the archive before a byte is copied.
 * Pure: the catalog and the archive are passed in as data and a gap-finding callback.
 */
import { BarmantsError } from '../errors/index.js';
import { formatLsn } from 'pg-replication/wal';
import { parseWalFileName, segmentOf, segmentStart, walFileName } from 'pg-replication/wal';
import { timelineSegments, type TimelineHistoryEntry } from 'pg-replication/wal';
import { parseCatalogTime } from '../retention/policy.js';
import { describeTarget, formatTargetTimeForPostgres, targetEpochMicros, type RecoveryTarget } from './target.js';

export interface PlanBackup {
  backupId: string;
  name: string | null;
  status: string;
  beginTime: string;
  endTime: string;
  beginLsn: bigint;
  endLsn: bigint;
  beginWal: string;
  endWal: string;
  timeline: number;
  walSegmentSize: number;
  pgVersion: number;
}

export type TargetTimeline = { kind: 'current' } | { kind: 'latest' } | { kind: 'number'; tli: number };

export interface PlanInput {
  backups: PlanBackup[];
  /** An already resolved backup ID, or null to choose from the target. */
  backupRef: string | null;
  target: RecoveryTarget;
  /** null = PostgreSQL's default: latest from 12 on, current before. */
  targetTli: TargetTimeline | null;
  /** Parsed `NNN.history` per timeline (the ancestors of NNN, oldest first). */
  histories: Map<number, TimelineHistoryEntry[]>;
  /** Missing segment ranges (inclusive) of [fromSegno, toSegno] on tli; [] = complete. */
  walRanges: (tli: number, fromSegno: bigint, toSegno: bigint) => { from: bigint; to: bigint }[];
  /** Newest WAL in the archive (partial = the `.partial` still being received). */
  lastWal: { tli: number; segno: bigint; partial: boolean } | null;
  /** Optional: newest segment per timeline, to end a branch that is not the archive's newest. */
  timelineEnds?: Map<number, { segno: bigint; partial: boolean }>;
}

export interface RecoveryPlan {
  backup: PlanBackup;
  chosenAutomatically: boolean;
  targetTli: number;
  walSegments: { tli: number; fromSegno: bigint; toSegno: bigint }[];
  includePartial: boolean;
  earliestReachable: string;
  notes: string[];
}

/**
 * Plans a restore, or throws a BarmantsError saying why it cannot work:
 * usage (target before the backup, bad timeline), notFound (no such/usable backup, missing
 * history file), unsafe (backup not DONE), gap (WAL missing on the way).
 */
export function planRecovery(input: PlanInput): RecoveryPlan {
  const notes: string[] = [];
  const { target } = input;
  const { backup, chosenAutomatically } = chooseBackup(input, notes);
  const earliest = `${backup.endTime} (LSN ${formatLsn(backup.endLsn)})`;
  const segSize = backup.walSegmentSize;

  if (backup.status !== 'DONE') {
    throw new BarmantsError('unsafe', `backup ${backup.backupId} is ${backup.status}, not DONE: it cannot be restored`, {
      hint:
        backup.status === 'WAITING_FOR_WALS'
          ? `wait until its WAL is archived (barmants check-backup ${backup.backupId}), or choose another backup`
          : 'choose a DONE backup: run `barmants list-backups <server>`',
    });
  }
  checkTargetAfterBackup(target, backup);

  const targetTli = resolveTargetTimeline(input, backup, notes);
  const history = targetTli === backup.timeline ? (input.histories.get(targetTli) ?? []) : input.histories.get(targetTli)!;

  let includePartial = false;
  let endSegno: bigint;
  if (target.kind === 'lsn') {
    endSegno = segmentOf(target.lsn, segSize);
    const last = input.lastWal;
    includePartial = last !== null && last.partial && last.segno === endSegno && last.tli === timelineOfSegno(history, targetTli, endSegno, segSize);
    notes.push(`WAL is needed only up to the segment holding ${formatLsn(target.lsn)}`);
  } else if (target.kind === 'immediate') {
    endSegno = parseWalFileName(backup.endWal, segSize).segno;
    notes.push('target immediate: only the WAL written during the backup is needed');
  } else {
    const end = archiveEnd(input, targetTli, segSize, notes);
    endSegno = end.segno;
    includePartial = end.partial;
  }
  const backupEndSegno = parseWalFileName(backup.endWal, segSize).segno;
  const beginSegno = parseWalFileName(backup.beginWal, segSize).segno;
  if (endSegno < backupEndSegno) {
    throw gapError(
      [{ tli: timelineOfSegno(history, targetTli, backupEndSegno, segSize), from: endSegno + 1n, to: backupEndSegno }],
      segSize,
      backup,
      beginSegno,
      endSegno,
    );
  }

  const walSegments = timelineSegments(history, targetTli, segmentStart(beginSegno, segSize), segmentStart(endSegno, segSize), segSize);

  // The .partial named by lastWal counts as present; walRanges is asked about complete segments.
  const gaps: { tli: number; from: bigint; to: bigint }[] = [];
  for (const r of walSegments) {
    let to = r.toSegno;
    if (includePartial && r === walSegments[walSegments.length - 1]) to -= 1n;
    if (to < r.fromSegno) continue;
    for (const g of input.walRanges(r.tli, r.fromSegno, to)) gaps.push({ tli: r.tli, from: g.from, to: g.to });
  }
  if (gaps.length > 0) throw gapError(gaps, segSize, backup, beginSegno, null);

  if (includePartial) notes.push('the last segment is the .partial still being received: it is included');
  if (target.kind === 'xid' || target.kind === 'name') {
    notes.push(`${describeTarget(target)} is not checked against the backup: PostgreSQL stops when it reaches it`);
  }
  return { backup, chosenAutomatically, targetTli, walSegments, includePartial, earliestReachable: earliest, notes };
}

function chooseBackup(input: PlanInput, notes: string[]): { backup: PlanBackup; chosenAutomatically: boolean } {
  if (input.backupRef !== null) {
    const b = input.backups.find((x) => x.backupId === input.backupRef);
    if (b === undefined) throw new BarmantsError('notFound', `backup ${input.backupRef} does not exist`);
    return { backup: b, chosenAutomatically: false };
  }
  const done = input.backups.filter((b) => b.status === 'DONE');
  if (done.length === 0) {
    throw new BarmantsError('notFound', 'there is no DONE backup to restore', { hint: 'take one with `barmants backup <server>`' });
  }
  const byEnd = (a: PlanBackup, b: PlanBackup): number => (a.endLsn < b.endLsn ? 1 : a.endLsn > b.endLsn ? -1 : 0);
  const { target } = input;
  if (target.kind === 'time') {
    const t = targetEpochMicros(target.time, target.micros ?? 0);
    const candidates = done
      .map((b) => ({ b, end: catalogMicros(b.endTime) }))
      .filter((c) => c.end !== null && c.end <= t)
      .sort((x, y) => (x.end! < y.end! ? 1 : x.end! > y.end! ? -1 : 0));
    if (candidates.length === 0) {
      const oldest = [...done].sort(byEnd).at(-1)!;
      throw new BarmantsError('usage', `no DONE backup ended before the target ${describeTarget(target)}`, {
        hint: `the earliest reachable point is ${oldest.endTime}, the end of backup ${oldest.backupId}`,
      });
    }
    notes.push(`backup ${candidates[0]!.b.backupId} chosen: the newest DONE backup that ended before the target time`);
    return { backup: candidates[0]!.b, chosenAutomatically: true };
  }
  if (target.kind === 'lsn') {
    const candidates = done.filter((b) => b.endLsn <= target.lsn).sort(byEnd);
    if (candidates.length === 0) {
      const oldest = [...done].sort(byEnd).at(-1)!;
      throw new BarmantsError('usage', `no DONE backup ended before the target LSN ${formatLsn(target.lsn)}`, {
        hint: `the earliest reachable point is ${formatLsn(oldest.endLsn)}, the end of backup ${oldest.backupId}`,
      });
    }
    notes.push(`backup ${candidates[0]!.backupId} chosen: the newest DONE backup that ended before the target LSN`);
    return { backup: candidates[0]!, chosenAutomatically: true };
  }
  const newest = [...done].sort((a, b) => (a.backupId < b.backupId ? 1 : a.backupId > b.backupId ? -1 : 0))[0]!;
  notes.push(`backup ${newest.backupId} chosen: the newest DONE backup (a ${target.kind} target cannot be placed in time)`);
  return { backup: newest, chosenAutomatically: true };
}

function checkTargetAfterBackup(target: RecoveryTarget, backup: PlanBackup): void {
  if (target.kind === 'time') {
    const end = catalogMicros(backup.endTime);
    const t = targetEpochMicros(target.time, target.micros ?? 0);
    if (end !== null && t < end) {
      throw new BarmantsError(
        'usage',
        `the target time ${formatTargetTimeForPostgres(target.time, target.micros ?? 0)} is before the end of backup ${backup.backupId} (${backup.endTime})`,
        { hint: `the earliest reachable point with this backup is ${backup.endTime}: choose a later target or an older backup` },
      );
    }
  } else if (target.kind === 'lsn' && target.lsn < backup.endLsn) {
    throw new BarmantsError(
      'usage',
      `the target LSN ${formatLsn(target.lsn)} is before the end of backup ${backup.backupId} (${formatLsn(backup.endLsn)})`,
      { hint: `the earliest reachable point with this backup is ${formatLsn(backup.endLsn)}: choose a later target or an older backup` },
    );
  }
}

/** Where `tli` stops descending from the backup; null when tli's history does not contain it. */
function forkFromBackup(input: PlanInput, backup: PlanBackup, tli: number): { ok: boolean; why: string } {
  if (tli === backup.timeline) return { ok: true, why: '' };
  const history = input.histories.get(tli);
  if (history === undefined) return { ok: false, why: `history file for timeline ${tli} is missing` };
  const entry = history.find((e) => e.tli === backup.timeline);
  if (entry === undefined) return { ok: false, why: `timeline ${tli} does not descend from timeline ${backup.timeline}` };
  if (entry.switchLsn < backup.endLsn) {
    return {
      ok: false,
      why: `timeline ${tli} forked from timeline ${backup.timeline} at ${formatLsn(entry.switchLsn)}, before the end of the backup (${formatLsn(backup.endLsn)})`,
    };
  }
  return { ok: true, why: '' };
}

function resolveTargetTimeline(input: PlanInput, backup: PlanBackup, notes: string[]): number {
  let requested = input.targetTli;
  if (requested === null) {
    const major = backup.pgVersion >= 10000 ? Math.floor(backup.pgVersion / 10000) : backup.pgVersion;
    requested = major >= 12 ? { kind: 'latest' } : { kind: 'current' };
    notes.push(`no --target-tli given: following the ${requested.kind} timeline, as PostgreSQL ${major} does by default`);
  }
  if (requested.kind === 'current') return backup.timeline;
  if (requested.kind === 'number') {
    if (input.histories.get(requested.tli) === undefined && requested.tli !== backup.timeline) {
      throw new BarmantsError('notFound', `timeline ${requested.tli} has no history file in the archive`, {
        hint: 'the archive only knows the timelines whose NNN.history it holds: check --target-tli',
      });
    }
    const fork = forkFromBackup(input, backup, requested.tli);
    if (!fork.ok) {
      throw new BarmantsError('usage', `backup ${backup.backupId} cannot reach timeline ${requested.tli}: ${fork.why}`, {
        hint: `choose a backup taken on the history of timeline ${requested.tli}, or another --target-tli`,
      });
    }
    return requested.tli;
  }
  const known = new Set<number>([backup.timeline, ...input.histories.keys()]);
  if (input.lastWal !== null) known.add(input.lastWal.tli);
  const ordered = [...known].sort((a, b) => b - a);
  for (const tli of ordered) {
    const fork = forkFromBackup(input, backup, tli);
    if (fork.ok) {
      if (tli !== ordered[0]) {
        notes.push(
          `latest timeline reachable from backup ${backup.backupId} is ${tli}; timeline ${ordered[0]} is newer but ${fork.why || forkFromBackup(input, backup, ordered[0]!).why}: recovery_target_timeline must be ${tli}, not 'latest'`,
        );
      }
      return tli;
    }
  }
  return backup.timeline;
}

/** Last segment to read on the way to targetTli when recovering to the end of the archive. */
function archiveEnd(
  input: PlanInput,
  targetTli: number,
  segSize: number,
  notes: string[],
): { segno: bigint; partial: boolean } {
  const own = input.timelineEnds?.get(targetTli);
  if (own !== undefined) return own;
  const last = input.lastWal;
  if (last === null) {
    throw new BarmantsError('gap', 'the WAL archive is empty: no WAL to recover with', {
      hint: 'check that receive-wal is running and run `barmants switch-wal --archive <server>`',
    });
  }
  if (last.tli === targetTli) return { segno: last.segno, partial: last.partial };
  const newer = input.histories.get(last.tli);
  const switched = newer?.find((e) => e.tli === targetTli);
  if (switched !== undefined) {
    // The tail of the old timeline is only in a .partial that recovery does not use.
    notes.push(`timeline ${targetTli} ended at ${formatLsn(switched.switchLsn)} (switch to a newer timeline); its last complete segment ends the recovery`);
    return { segno: segmentOf(switched.switchLsn, segSize) - 1n, partial: false };
  }
  throw new BarmantsError('notFound', `cannot tell where timeline ${targetTli} ends: the newest archived WAL is on timeline ${last.tli}`, {
    hint: 'give a target LSN, or the newest timeline with --target-tli',
  });
}

function timelineOfSegno(history: TimelineHistoryEntry[], targetTli: number, segno: bigint, segSize: number): number {
  for (const e of history) if (segmentOf(e.switchLsn, segSize) > segno) return e.tli;
  return targetTli;
}

function gapError(
  gaps: { tli: number; from: bigint; to: bigint }[],
  segSize: number,
  backup: PlanBackup,
  beginSegno: bigint,
  archiveEndSegno: bigint | null,
): BarmantsError {
  const first = gaps[0]!;
  const count = first.to - first.from + 1n;
  const more = gaps.length > 1 ? ` (and ${gaps.length - 1} more gap${gaps.length > 2 ? 's' : ''})` : '';
  const message = `WAL is missing for this recovery: ${walFileName(first.tli, first.from, segSize)}..${walFileName(first.tli, first.to, segSize)} (${count} segment${count === 1n ? '' : 's'}) on timeline ${first.tli}${more}`;
  const reachable = segmentStart(first.from, segSize);
  const backupEndSegno = parseWalFileName(backup.endWal, segSize).segno;
  let hint: string;
  if (first.from <= backupEndSegno) {
    hint = `the archive has a gap inside backup ${backup.backupId} (WAL ${backup.beginWal}..${backup.endWal}): it cannot become consistent; restore another backup`;
  } else {
    hint = `the archive has a gap; the latest point you can reach is ${formatLsn(reachable)} (end of the contiguous WAL): use --target-lsn ${formatLsn(reachable)} or an earlier target`;
  }
  if (archiveEndSegno !== null) hint += `; the archive ends at segment ${walFileName(first.tli, archiveEndSegno, segSize)}`;
  return new BarmantsError('gap', message, { hint });
}

function catalogMicros(text: string): bigint | null {
  const ms = parseCatalogTime(text);
  if (ms === null) return null;
  const frac = /\.(\d+)/.exec(text);
  const micros = frac === undefined || frac === null ? 0 : Number(frac[1]!.padEnd(6, '0').slice(3, 6));
  return BigInt(ms) * 1000n + BigInt(micros);
}
