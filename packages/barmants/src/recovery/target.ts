/*
 * Recovery targets (--target-time/-xid/-lsn/-name/-immediate): parsing the operator's text into
 * exact values, and printing a target time the way recovery_target_time expects it. Pure: the
 * default time zone is passed in, never read from the host.
 */
import { BarmantsError } from '../errors/index.js';
import { formatLsn, parseLsn } from 'pg-replication/wal';

export type RecoveryTarget =
  /** `micros` is the sub-millisecond part (0–999) that a Date cannot hold. */
  | { kind: 'time'; time: Date; inclusive: boolean; text: string; micros?: number }
  | { kind: 'xid'; xid: string; inclusive: boolean }
  | { kind: 'lsn'; lsn: bigint; inclusive: boolean }
  | { kind: 'name'; name: string }
  | { kind: 'immediate' }
  | { kind: 'end' };

export interface ParsedTargetTime {
  time: Date;
  /** Sub-millisecond microseconds (0–999). */
  micros: number;
  /** False when the text had no zone and defaultTimeZone was applied (Barman warns then). */
  zoneGiven: boolean;
}

const TIME_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?(?:\s*(Z|[+-]\d{2}(?::?\d{2})?)|\s+([A-Za-z][A-Za-z0-9_+\-/]*))?$/i;

function invalidTime(text: string, why?: string): BarmantsError {
  return new BarmantsError(
    'usage',
    `invalid target time "${text}": ${why ? `${why}; ` : ''}expected ISO-8601 or 'YYYY-MM-DD HH:MM:SS[.ffffff][±TZ]', e.g. '2026-11-27 10:15:00+01'`,
    { hint: "give the time with its zone, e.g. --target-time '2026-11-27 10:15:00+01' or '2026-11-27T09:15:00Z'" },
  );
}

/** parseTargetTimeDetailed without the details. */
export function parseTargetTime(text: string, defaultTimeZone: string): Date {
  return parseTargetTimeDetailed(text, defaultTimeZone).time;
}

/**
 * Accepts ISO-8601 and PostgreSQL's text forms: `2026-11-27T10:00:00Z`, `…+01:00`, `…,5`,
 * `2026-11-27 10:15:00.123456+01`, `… UTC`, `… Europe/Paris`, a bare date (midnight).
 * A time without zone is read in defaultTimeZone (IANA name, `UTC`, or an offset like `+02:00`).
 * Local times that do not exist or exist twice follow PostgreSQL: a time skipped by a DST jump
 * (Europe/Paris 2026-03-29 02:30) uses the offset in force before the jump (→ 01:30Z, shown as
 * 03:30+02); a time repeated when clocks go back takes the later instant (standard time).
 */
export function parseTargetTimeDetailed(text: string, defaultTimeZone: string): ParsedTargetTime {
  const m = TIME_TEXT.exec(text.trim());
  if (m === null) throw invalidTime(text);
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as [
    number, number, number, number, number, number,
  ];
  const frac = (m[7] ?? '').padEnd(6, '0');
  const ms = Number(frac.slice(0, 3));
  const micros = Number(frac.slice(3, 6));
  if (month < 1 || month > 12) throw invalidTime(text, `month ${month} does not exist`);
  const wallUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(wallUtc);
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month - 1) throw invalidTime(text, `day ${day} does not exist in that month`);
  if (hour > 23 || minute > 59 || second > 59) throw invalidTime(text, 'hour, minute or second out of range');

  const zoneText = m[8] ?? m[9];
  const zone = zoneText ?? defaultTimeZone;
  let utcMs: number;
  const offset = parseOffset(zone);
  if (offset !== null) {
    utcMs = wallUtc - offset * 1000;
  } else {
    if (!isIanaZone(zone)) {
      if (zoneText !== undefined) throw invalidTime(text, `unknown time zone "${zone}"`);
      throw new BarmantsError('usage', `invalid default time zone "${zone}": expected an IANA name like Europe/Paris, UTC or an offset like +02:00`);
    }
    utcMs = zonedToUtc(wallUtc, zone);
  }
  return { time: new Date(utcMs + ms), micros, zoneGiven: zoneText !== undefined };
}

/** Offset in seconds east of UTC for `Z`, `UTC`, `GMT`, `+02`, `+0200`, `+02:00`; null otherwise. */
function parseOffset(zone: string): number | null {
  if (/^(z|utc|gmt|etc\/utc)$/i.test(zone)) return 0;
  const m = /^([+-])(\d{2})(?::?(\d{2}))?$/.exec(zone);
  if (m === null) return null;
  const h = Number(m[2]);
  const min = Number(m[3] ?? '0');
  if (h > 15 || min > 59) return null;
  return (m[1] === '-' ? -1 : 1) * (h * 3600 + min * 60);
}

function isIanaZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Offset (ms east of UTC) of `zone` at the instant `utcMs`. */
function zoneOffsetAt(utcMs: number, zone: string): number {
  let f = formatters.get(zone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(zone, f);
  }
  const parts: Record<string, number> = {};
  for (const p of f.formatToParts(new Date(utcMs))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const wall = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour! % 24, parts.minute!, parts.second!);
  return wall - Math.floor(utcMs / 1000) * 1000;
}

/** The instant whose wall-clock time in `zone` is `wallUtc` (a wall time encoded as if UTC). */
function zonedToUtc(wallUtc: number, zone: string): number {
  const day = 86_400_000;
  const before = zoneOffsetAt(wallUtc - day, zone);
  const after = zoneOffsetAt(wallUtc + day, zone);
  const candidates = [...new Set([before, after])]
    .map((o) => wallUtc - o)
    .filter((t) => t + zoneOffsetAt(t, zone) === wallUtc);
  if (candidates.length === 0) {
    // Skipped by a DST jump: PostgreSQL reads it with the offset in force before the jump.
    return wallUtc - before;
  }
  return Math.max(...candidates); // repeated hour: the later instant, as PostgreSQL does
}

/** `2026-11-27 09:15:00.123456+00`: UTC, microseconds only when not zero. */
export function formatTargetTimeForPostgres(time: Date, micros = 0): string {
  if (Number.isNaN(time.getTime())) throw new RangeError('invalid Date');
  const iso = time.toISOString(); // 2026-11-27T09:15:00.123Z
  const base = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  const ms = time.getUTCMilliseconds();
  const frac = ms === 0 && micros === 0 ? '' : `.${String(ms).padStart(3, '0')}${String(micros).padStart(3, '0')}`;
  return `${base}${frac}+00`;
}

/** Epoch microseconds of a time target, for exact comparisons with catalog times. */
export function targetEpochMicros(time: Date, micros = 0): bigint {
  return BigInt(time.getTime()) * 1000n + BigInt(micros);
}

const MAX_XID = 0xffffffffffffffffn;

/** A transaction ID: plain decimal digits, 3 or more (0–2 are reserved), up to 64 bits. */
export function parseTargetXid(text: string): string {
  const t = text.trim();
  if (!/^\d+$/.test(t)) {
    throw new BarmantsError('usage', `invalid target xid "${text}": expected a transaction ID as decimal digits, e.g. 734`);
  }
  const xid = BigInt(t);
  if (xid < 3n || xid > MAX_XID) {
    throw new BarmantsError('usage', `invalid target xid "${text}": transaction IDs go from 3 to 18446744073709551615`);
  }
  return xid.toString();
}

/** A WAL position `X/Y`. */
export function parseTargetLsn(text: string): bigint {
  try {
    return parseLsn(text.trim());
  } catch {
    throw new BarmantsError('usage', `invalid target LSN "${text}": expected two hexadecimal numbers separated by a slash, e.g. 0/16B3748`);
  }
}

/** One line for notes and errors. */
export function describeTarget(target: RecoveryTarget): string {
  switch (target.kind) {
    case 'time':
      return `time ${formatTargetTimeForPostgres(target.time, target.micros ?? 0)}`;
    case 'xid':
      return `xid ${target.xid}`;
    case 'lsn':
      return `LSN ${formatLsn(target.lsn)}`;
    case 'name':
      return `restore point "${target.name}"`;
    case 'immediate':
      return 'immediate (end of the backup)';
    case 'end':
      return 'end of the archived WAL';
  }
}
