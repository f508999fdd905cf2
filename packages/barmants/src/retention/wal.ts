/*
 * WAL retention (`wal_retention_policy = main`): given the backups left after retention deleted
 * the obsolete ones, which archived WAL segments are still needed. Pure: names in, names out.
 */
import type { RetentionBackup, RetentionVerdict } from './policy.js';

export interface WalRetentionBackup extends RetentionBackup {
  verdict: RetentionVerdict;
}

export interface WalRetentionInput {
  /** Backups still in the catalog after deletions, with their retention verdicts. */
  backups: WalRetentionBackup[];
  /** Archived WAL names, sorted; may include `.partial`, `.backup` and `.history` names. */
  segments: string[];
}

export interface WalRetentionResult {
  /**
   * Every WAL segment (24-hex name, or its `.partial`/`.backup` variant) sorting before this
   * name may go, except those inside keepRanges. null = remove nothing. History files are never
   * removable, whatever their name sorts as.
   */
  removableBefore: string | null;
  /** Inclusive ranges still needed by keep:standalone backups older than removableBefore. */
  keepRanges: { from: string; to: string }[];
  /** The names from `segments` that may be removed now, in order. */
  removable: string[];
  reason: string;
}

const SEGMENT_PREFIX = /^[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?$/;

/**
 * Decisions:
 * - The anchor is every remaining backup that needs WAL from its begin onward: DONE backups that
 *   are not keep:standalone (VALID, OBSOLETE*, KEEP:FULL — a keep:full backup must stay
 *   recoverable to any later point, so it pins all WAL after its begin), and running backups
 *   (STARTED / WAITING_FOR_WALS) that already know their begin_wal. FAILED and DELETING backups
 *   need nothing.
 * - removableBefore is the smallest begin_wal among anchors. Names sort by timeline first, so
 *   this also protects every later timeline (Barman protects the timelines of the other backups).
 * - keep:standalone backups only need begin_wal..end_wal, returned as keepRanges.
 * - With no anchor, nothing is removed: retention never empties the archive, because the WAL is
 *   then the only copy of the changes since the last backup and the next backup will start from it.
 */
export function walRetention(input: WalRetentionInput): WalRetentionResult {
  const anchors = input.backups.filter(
    (b) =>
      b.beginWal !== null &&
      b.status !== 'FAILED' &&
      b.status !== 'DELETING' &&
      !(b.status === 'DONE' && (b.keep === 'standalone' || b.verdict === 'KEEP:STANDALONE')),
  );
  const standalone = input.backups.filter(
    (b) =>
      b.status === 'DONE' &&
      (b.keep === 'standalone' || b.verdict === 'KEEP:STANDALONE') &&
      b.beginWal !== null &&
      b.endWal !== null,
  );

  let oldest: WalRetentionBackup | null = null;
  for (const b of anchors) if (oldest === null || b.beginWal! < oldest.beginWal!) oldest = b;

  if (oldest === null) {
    return {
      removableBefore: null,
      keepRanges: standalone.map((b) => ({ from: b.beginWal!, to: b.endWal! })),
      removable: [],
      reason:
        'no backup needs WAL from a starting point: nothing is removed, the archive is never emptied by retention (it holds the only copy of the changes since the last backup)',
    };
  }

  const before = oldest.beginWal!;
  const keepRanges = standalone
    .filter((b) => b.beginWal! < before)
    .map((b) => ({ from: b.beginWal!, to: b.endWal! < before ? b.endWal! : before }))
    .sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));

  const removable = input.segments.filter((name) => {
    if (!SEGMENT_PREFIX.test(name)) return false; // history files and strangers stay
    const seg = name.slice(0, 24);
    if (seg >= before) return false;
    return !keepRanges.some((r) => seg >= r.from && seg <= r.to);
  });

  const kept = keepRanges.length === 0 ? '' : `; ${keepRanges.length} keep:standalone range${keepRanges.length === 1 ? '' : 's'} preserved`;
  return {
    removableBefore: before,
    keepRanges,
    removable,
    reason: `WAL before ${before} (begin of backup ${oldest.backupId}, the oldest backup needing continuous WAL) is no longer needed${kept}`,
  };
}
