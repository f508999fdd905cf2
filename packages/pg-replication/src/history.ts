/*
 * Timeline history files (`TTTTTTTT.history`): the ancestry of a timeline, one line per switch.
 * Recovery planning follows a history to know which timeline's segments hold which LSNs, and the
 * WAL receiver fetches one at every timeline switch.
 */
import { formatLsn, parseLsn, type Lsn } from './lsn.js';
import { segmentOf } from './walfile.js';

/** One line of a history file: timeline `tli` (the parent) ended at `switchLsn`. */
export interface TimelineHistoryEntry {
  tli: number;
  switchLsn: Lsn;
  reason: string;
}

/** Segments [fromSegno, toSegno] (inclusive) that recovery reads from timeline `tli`. */
export interface TimelineSegmentRange {
  tli: number;
  fromSegno: bigint;
  toSegno: bigint;
}

// sscanf("%u\t%X/%X") in readTimeLineHistory: any whitespace between fields; the reason is free text.
const HISTORY_LINE = /^\s*(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})(?:\s+(.*?))?\s*$/;
const MAX_U32 = 0xffffffff;

/**
 * Parses a history file strictly: blank lines and `#` comments are skipped (PostgreSQL writes a
 * blank line between inherited and new entries), every other line must be
 * `<tli> <X/Y> [reason]`, and timelines must increase.
 */
export function parseTimelineHistory(content: string): TimelineHistoryEntry[] {
  const entries: TimelineHistoryEntry[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const where = `timeline history line ${i + 1}`;
    const m = HISTORY_LINE.exec(line);
    if (m === null) {
      throw new TypeError(
        `invalid ${where} ${JSON.stringify(line)}: expected a timeline ID, a switch point like 0/16B3748 and a reason, separated by tabs`,
      );
    }
    const tli = Number(m[1]);
    if (!Number.isSafeInteger(tli) || tli < 1 || tli > MAX_U32) {
      throw new TypeError(`invalid ${where}: timeline ${m[1]} is out of range`);
    }
    const prev = entries[entries.length - 1];
    if (prev !== undefined && tli <= prev.tli) {
      throw new TypeError(`invalid ${where}: timeline ${tli} does not follow timeline ${prev.tli}; timeline IDs must increase`);
    }
    const switchLsn = parseLsn(m[2]!);
    if (prev !== undefined && switchLsn < prev.switchLsn) {
      throw new TypeError(
        `invalid ${where}: switch point ${m[2]} is before the previous one (${formatLsn(prev.switchLsn)})`,
      );
    }
    entries.push({ tli, switchLsn, reason: m[3] ?? '' });
  }
  return entries;
}

/** Writes entries as PostgreSQL does (`%u\t%X/%X\t%s\n`), without the blank separator lines. */
export function formatTimelineHistory(entries: readonly TimelineHistoryEntry[]): string {
  return entries.map((e) => `${e.tli}\t${formatLsn(e.switchLsn)}\t${e.reason}\n`).join('');
}

/**
 * Which timeline holds `lsn` on the way to `targetTli` (tliOfPointInHistory): a timeline owns
 * positions up to but excluding its switch point, which belongs to the child.
 */
export function timelineForLsn(history: readonly TimelineHistoryEntry[], targetTli: number, lsn: Lsn): number {
  assertHistoryLeadsTo(history, targetTli);
  for (const entry of history) if (entry.switchLsn > lsn) return entry.tli;
  return targetTli;
}

/**
 * The segment ranges a recovery from `fromLsn` to `toLsn` (both inclusive byte positions) reads,
 * oldest first. The segment holding a switch point exists on both timelines; like
 * XLogFileReadAnyTLI, recovery reads it from the newer one, so a parent's range stops one segment
 * before its switch point's segment, and a timeline whose switch falls in the segment it began in
 * contributes nothing.
 */
export function timelineSegments(
  history: readonly TimelineHistoryEntry[],
  targetTli: number,
  fromLsn: Lsn,
  toLsn: Lsn,
  segSize: number,
): TimelineSegmentRange[] {
  assertHistoryLeadsTo(history, targetTli);
  if (fromLsn > toLsn) {
    throw new RangeError(`invalid WAL range: start ${formatLsn(fromLsn)} is after end ${formatLsn(toLsn)}`);
  }
  const first = segmentOf(fromLsn, segSize);
  const last = segmentOf(toLsn, segSize);
  const ranges: TimelineSegmentRange[] = [];
  let begin = 0n; // first segment read from the current timeline
  const add = (tli: number, end: bigint): void => {
    const fromSegno = begin > first ? begin : first;
    const toSegno = end < last ? end : last;
    if (fromSegno <= toSegno) ranges.push({ tli, fromSegno, toSegno });
  };
  for (const entry of history) {
    const switchSeg = segmentOf(entry.switchLsn, segSize);
    add(entry.tli, switchSeg - 1n);
    if (switchSeg > begin) begin = switchSeg;
  }
  add(targetTli, last);
  return ranges;
}

function assertHistoryLeadsTo(history: readonly TimelineHistoryEntry[], targetTli: number): void {
  const last = history[history.length - 1];
  if (last !== undefined && targetTli <= last.tli) {
    throw new RangeError(`timeline ${targetTli} cannot follow a history that ends with timeline ${last.tli}`);
  }
}
