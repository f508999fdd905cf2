/*
 * Pure decisions of the WAL receiver, kept apart so they can be unit-tested without a server:
 * where to resume after a failover or PITR (the point where the archive's timeline line and
 * the server's part), where after WAL the server has removed (the oldest segment it still has),
 * whether the receiver is a synchronous standby, and the reconnect backoff.
 */
import { type Lsn, type TimelineHistoryEntry, isWalSegmentName, parseWalFileName, segmentOf, segmentStart, timelineForLsn } from 'pg-replication';
import type { HistoryFileRecord } from '../catalog/index.js';

/** A timeline and its ancestry: `history` as in `<tli>.history`, oldest first. */
export interface TimelineLine {
  tli: number;
  history: readonly TimelineHistoryEntry[];
}

/**
 * The ancestry of `tli` rebuilt from the catalog's history rows (each row names its parent and
 * the switch point). Missing rows end the chain: what is known is returned.
 */
export function ancestryFromCatalog(rows: readonly HistoryFileRecord[], tli: number): TimelineHistoryEntry[] {
  const byTli = new Map(rows.map((r) => [r.tli, r]));
  const out: TimelineHistoryEntry[] = [];
  let cur = byTli.get(tli);
  const seen = new Set<number>();
  while (cur && !seen.has(cur.tli)) {
    seen.add(cur.tli);
    out.unshift({ tli: cur.parentTli, switchLsn: cur.switchLsn, reason: '' });
    cur = byTli.get(cur.parentTli);
  }
  return out;
}

/**
 * Where our archive's line (`ours`, streamed up to `upTo`) and the server's line part: the first
 * position at which the two would read a different timeline, capped at `upTo`. Returns the
 * position and the server's timeline there: streaming resumes on that timeline at the segment
 * holding the position (that segment starts with the same bytes on both timelines).
 */
export function divergencePoint(ours: TimelineLine, server: TimelineLine, upTo: Lsn): { lsn: Lsn; tli: number } {
  const points = new Set<Lsn>([0n]);
  for (const e of ours.history) if (e.switchLsn <= upTo) points.add(e.switchLsn);
  for (const e of server.history) if (e.switchLsn <= upTo) points.add(e.switchLsn);
  const sorted = [...points].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const p of sorted) {
    const a = timelineForLsn(ours.history, ours.tli, p);
    const b = timelineForLsn(server.history, server.tli, p);
    if (a !== b) return { lsn: p, tli: b };
  }
  return { lsn: upTo, tli: timelineForLsn(server.history, server.tli, upTo) };
}

/**
 * After "requested WAL segment has already been removed": the first segment after `fromSegno`
 * that the server still has, from the file names in its pg_wal, and the timeline to stream it on.
 * Only segments up to the one being written count (later names are recycled files), and only
 * files of the timeline the server's history gives for that segment (the segment holding a
 * switch point is read from the newer timeline's file). Null when there is none.
 */
export function firstSegmentStillOnServer(o: {
  walFiles: readonly string[];
  segSize: number;
  fromSegno: bigint;
  currentLsn: Lsn;
  serverTli: number;
  serverHistory: readonly TimelineHistoryEntry[];
}): { segno: bigint; tli: number } | null {
  const current = segmentOf(o.currentLsn, o.segSize);
  let best: { segno: bigint; tli: number } | null = null;
  for (const name of o.walFiles) {
    if (!isWalSegmentName(name)) continue;
    let f: { tli: number; segno: bigint };
    try {
      f = parseWalFileName(name, o.segSize);
    } catch {
      continue;
    }
    if (f.segno <= o.fromSegno || f.segno > current || (best && f.segno >= best.segno)) continue;
    const first = timelineForLsn(o.serverHistory, o.serverTli, segmentStart(f.segno, o.segSize));
    const last = timelineForLsn(o.serverHistory, o.serverTli, segmentStart(f.segno + 1n, o.segSize) - 1n);
    if (f.tli !== first && f.tli !== last) continue;
    best = { segno: f.segno, tli: first };
  }
  return best;
}

/** The application names listed in `synchronous_standby_names` (`a, b`, `FIRST 2 (a, "B")`, `ANY 1 (*)`, `2 (a, b)`). */
export function parseSynchronousStandbyNames(value: string | null | undefined): string[] {
  if (!value) return [];
  let s = value.trim();
  const m = /^(?:(?:first|any)\s+)?\d+\s*\((.*)\)\s*$/is.exec(s);
  if (m) s = m[1]!;
  const names: string[] = [];
  for (const part of s.split(',')) {
    const p = part.trim();
    if (!p) continue;
    names.push(p.startsWith('"') && p.endsWith('"') && p.length >= 2 ? p.slice(1, -1).replace(/""/g, '"') : p);
  }
  return names;
}

/** PostgreSQL matches application_name case-insensitively (pg_strcasecmp), and `*` matches all. */
export function isSynchronousStandby(setting: string | null | undefined, applicationName: string): boolean {
  const app = applicationName.toLowerCase();
  return parseSynchronousStandbyNames(setting).some((n) => n === '*' || n.toLowerCase() === app);
}

/** Capped exponential backoff with jitter (50–100 % of the step). `attempt` starts at 0. */
export function backoffDelay(attempt: number, baseMs = 500, capMs = 30_000, random: () => number = Math.random): number {
  const step = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(step * (0.5 + random() / 2));
}
