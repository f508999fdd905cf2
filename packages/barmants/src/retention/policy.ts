/*
 * Retention policies (REDUNDANCY n, RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS) evaluated as Barman's
 * retention_policies.py does, on plain data: which backups are VALID, OBSOLETE or kept, which ones
 * cron may delete, and how much WAL the remaining backups still need. No I/O, time is injected.
 */

export type RetentionPolicy =
  | { kind: 'redundancy'; count: number }
  | { kind: 'window'; amount: number; unit: 'days' | 'weeks' | 'months'; seconds: number };

export interface RetentionBackup {
  backupId: string;
  status: 'STARTED' | 'WAITING_FOR_WALS' | 'DONE' | 'FAILED' | 'DELETING';
  beginTime: string | null;
  endTime: string | null;
  keep: 'full' | 'standalone' | null;
  beginWal: string | null;
  endWal: string | null;
  timeline: number | null;
}

/** POTENTIALLY_OBSOLETE is Barman's `OBSOLETE*`; NONE is its `-` (not DONE). */
export type RetentionVerdict = 'VALID' | 'OBSOLETE' | 'POTENTIALLY_OBSOLETE' | 'KEEP:FULL' | 'KEEP:STANDALONE' | 'NONE';

export interface RetentionInput {
  policy: RetentionPolicy | null;
  minimumRedundancy: number;
  backups: RetentionBackup[];
  now: Date;
  /** FAILED backups older than this are deleted; undefined = never (Barman never removes them). */
  failedBackupRetentionSec?: number;
}

export interface RetentionReport {
  verdicts: Map<string, { verdict: RetentionVerdict; reason: string }>;
  /** Oldest first, the order Barman's cron deletes in. */
  toDelete: { backupId: string; reason: string }[];
  warnings: string[];
}

const DAY = 86_400;

/** The policy in Barman's words, for reasons and `show-servers`. */
export function describePolicy(policy: RetentionPolicy): string {
  return policy.kind === 'redundancy'
    ? `REDUNDANCY ${policy.count}`
    : `RECOVERY WINDOW OF ${policy.amount} ${policy.unit.toUpperCase()}`;
}

/** Builds a window policy with Barman's arithmetic (a month is 31 days). */
export function recoveryWindow(amount: number, unit: 'days' | 'weeks' | 'months'): RetentionPolicy {
  const perUnit = unit === 'days' ? DAY : unit === 'weeks' ? 7 * DAY : 31 * DAY;
  return { kind: 'window', amount, unit, seconds: amount * perUnit };
}

/**
 * Classifies every backup and lists what retention deletes.
 *
 * Decisions where Barman is implicit:
 * - Backups are ordered by backup ID, as Barman does (IDs are timestamps `YYYYMMDDTHHMMSS`).
 * - Kept backups (keep:full / keep:standalone) are never OBSOLETE, but, exactly as in Barman's
 *   loops, they still occupy a place in the count: with REDUNDANCY 2 and the newest backup kept,
 *   only one more backup is VALID. They are restorable DONE backups, so they also count toward
 *   minimum_redundancy (Barman's delete counts every DONE backup).
 * - STARTED, WAITING_FOR_WALS and DELETING backups are NONE and never deleted here: a running
 *   backup must not vanish, and finishing an interrupted delete is the delete command's job.
 * - minimum_redundancy is enforced a second time on the deletion list: deletions go oldest first
 *   and stop while they would leave fewer DONE backups than required; the spared ones become
 *   POTENTIALLY_OBSOLETE (OBSOLETE*).
 */
export function evaluateRetention(input: RetentionInput): RetentionReport {
  const { policy, now } = input;
  const minimum = Math.max(0, input.minimumRedundancy);
  const verdicts = new Map<string, { verdict: RetentionVerdict; reason: string }>();
  const warnings: string[] = [];
  const toDelete: { backupId: string; reason: string }[] = [];

  const newestFirst = [...input.backups].sort((a, b) => (a.backupId < b.backupId ? 1 : a.backupId > b.backupId ? -1 : 0));
  const done = newestFirst.filter((b) => b.status === 'DONE');

  for (const b of newestFirst) {
    if (b.status !== 'DONE') verdicts.set(b.backupId, { verdict: 'NONE', reason: notDoneReason(b) });
  }

  if (policy === null) {
    for (const b of done) {
      const kept = keepVerdict(b);
      verdicts.set(b.backupId, kept ?? { verdict: 'VALID', reason: 'no retention policy is configured' });
    }
  } else if (policy.kind === 'redundancy') {
    let redundancy = policy.count;
    if (redundancy < minimum) {
      warnings.push(
        `retention policy redundancy (${redundancy}) is lower than the required minimum redundancy (${minimum}): enforcing ${minimum}`,
      );
      redundancy = minimum;
    }
    done.forEach((b, i) => {
      const kept = keepVerdict(b);
      if (kept !== null) verdicts.set(b.backupId, kept);
      else if (i < redundancy) {
        verdicts.set(b.backupId, { verdict: 'VALID', reason: `one of the ${redundancy} newest DONE backups (REDUNDANCY ${redundancy})` });
      } else {
        verdicts.set(b.backupId, {
          verdict: 'OBSOLETE',
          reason: `obsolete under REDUNDANCY ${redundancy}: ${i} newer DONE backup${i === 1 ? '' : 's'}`,
        });
      }
    });
  } else {
    const pointMs = now.getTime() - policy.seconds * 1000;
    const point = new Date(pointMs).toISOString();
    const label = describePolicy(policy);
    let found = false; // found the newest backup that ended before the window opened
    let valid = 0;
    for (const b of done) {
      const kept = keepVerdict(b);
      if (!found) {
        const end = parseCatalogTime(b.endTime ?? b.beginTime);
        // A DONE backup without a readable end time is treated as inside the window: keeping
        // too much is recoverable, deleting too much is not.
        const before = end !== null && end < pointMs;
        verdicts.set(
          b.backupId,
          kept ??
            (before
              ? { verdict: 'VALID', reason: `newest backup ended before the window start ${point}: needed to recover to it (${label})` }
              : { verdict: 'VALID', reason: `ended inside the recovery window (after ${point})` }),
        );
        valid++;
        if (before) found = true;
      } else if (kept !== null) {
        verdicts.set(b.backupId, kept);
        if (valid < minimum) valid++;
      } else if (valid < minimum) {
        verdicts.set(b.backupId, {
          verdict: 'POTENTIALLY_OBSOLETE',
          reason: `older than the recovery window start ${point}, kept by minimum_redundancy ${minimum}`,
        });
        valid++;
      } else {
        verdicts.set(b.backupId, {
          verdict: 'OBSOLETE',
          reason: `obsolete under ${label}: a newer backup already covers the window start ${point}`,
        });
      }
    }
  }

  // Oldest first, like `barman cron`, so that the newest obsolete backups are the ones spared by
  // minimum_redundancy.
  let remainingDone = done.length;
  for (const b of [...done].reverse()) {
    const v = verdicts.get(b.backupId)!;
    if (v.verdict !== 'OBSOLETE') continue;
    if (remainingDone <= minimum) {
      const spared = {
        verdict: 'POTENTIALLY_OBSOLETE' as const,
        reason: `${v.reason}; kept by minimum_redundancy ${minimum} (${remainingDone} DONE backups left)`,
      };
      verdicts.set(b.backupId, spared);
      warnings.push(
        `keeping obsolete backup ${b.backupId} due to minimum redundancy requirements (minimum redundancy = ${minimum}, current redundancy = ${remainingDone})`,
      );
      continue;
    }
    toDelete.push({ backupId: b.backupId, reason: v.reason });
    remainingDone--;
  }

  if (input.failedBackupRetentionSec !== undefined) {
    const limitMs = now.getTime() - input.failedBackupRetentionSec * 1000;
    for (const b of [...newestFirst].reverse()) {
      if (b.status !== 'FAILED') continue;
      const at = parseCatalogTime(b.endTime ?? b.beginTime);
      if (at === null) {
        warnings.push(`failed backup ${b.backupId} has no begin or end time: not deleted by failed backup retention`);
        continue;
      }
      if (at < limitMs) {
        const reason = `FAILED backup older than failed backup retention (${input.failedBackupRetentionSec} s)`;
        verdicts.set(b.backupId, { verdict: 'NONE', reason });
        toDelete.push({ backupId: b.backupId, reason });
      }
    }
  }

  return { verdicts, toDelete, warnings };
}

function keepVerdict(b: RetentionBackup): { verdict: RetentionVerdict; reason: string } | null {
  if (b.keep === 'standalone') {
    return { verdict: 'KEEP:STANDALONE', reason: 'keep annotation (standalone): never deleted by retention' };
  }
  if (b.keep === 'full') return { verdict: 'KEEP:FULL', reason: 'keep annotation (full): never deleted by retention' };
  return null;
}

function notDoneReason(b: RetentionBackup): string {
  switch (b.status) {
    case 'STARTED':
      return 'backup in progress: never deleted by retention';
    case 'WAITING_FOR_WALS':
      return 'waiting for its WAL: never deleted by retention';
    case 'DELETING':
      return 'being deleted: the delete command finishes it, not retention';
    default:
      return 'FAILED backups are not covered by the retention policy';
  }
}

/**
 * Catalog times (`2026-11-24 20:04:31.291056+00:00`, or ISO-8601) to epoch milliseconds; null
 * when absent or unreadable. Times without a zone are read as UTC, which is how barmants stores them.
 */
export function parseCatalogTime(text: string | null): number | null {
  if (text === null) return null;
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(text.trim());
  if (m === null) return null;
  const frac = m[3] === undefined ? '' : m[3].slice(0, 4);
  let zone = m[4] ?? 'Z';
  if (/^[+-]\d{2}$/.test(zone)) zone += ':00';
  else if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const ms = Date.parse(`${m[1]}T${m[2]}${frac}${zone.toUpperCase()}`);
  return Number.isNaN(ms) ? null : ms;
}
