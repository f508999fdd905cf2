/*
 * Backup ids and timestamps. Ids are Barman's: the backup host's local start time as
 * YYYYMMDDTHHMMSS. Times in backup.info and the catalog are ISO-8601 with the local offset.
 */
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

export function backupIdFor(d: Date): string {
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}T${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

export const BACKUP_ID_RE = /^\d{8}T\d{6}$/;

/** 2026-11-27T10:15:00.123+01:00 */
export function isoLocal(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}` +
    `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`
  );
}

/** Names a backup may not take: Barman's reserved words, or anything that looks like an id. */
export const RESERVED_BACKUP_NAMES = new Set(['latest', 'last', 'oldest', 'first', 'last-failed', 'latest-full', 'last-full', 'auto']);
