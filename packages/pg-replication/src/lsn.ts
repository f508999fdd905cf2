/*
 * Log sequence numbers: WAL positions as 64-bit bigints, parsed from and printed in PostgreSQL's
 * `X/Y` text form. Every other module (WAL names, history, manifests, feedback) builds on these,
 * so the text form must match the server's byte for byte (`0/16B3748`, `1/0`).
 */

/** A WAL position. Always a bigint: positions pass 2^53 on long-lived clusters. */
export type Lsn = bigint;

/** PostgreSQL's InvalidXLogRecPtr; the walsender sends it for "unknown" (e.g. apply position). */
export const InvalidLsn: Lsn = 0n;

const MAX_LSN = 0xffffffffffffffffn;
const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses `X/Y` (two hex numbers of at most 8 digits, any case), as pg_lsn input does. */
export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text);
  if (m === null) {
    throw new TypeError(
      `invalid LSN ${JSON.stringify(text)}: expected two hexadecimal numbers separated by a slash, like 0/16B3748`,
    );
  }
  return (BigInt('0x' + m[1]!) << 32n) | BigInt('0x' + m[2]!);
}

/** Prints an LSN the way PostgreSQL does (`%X/%X`): uppercase, no leading zeros. */
export function formatLsn(lsn: Lsn): string {
  assertLsn(lsn);
  const hi = (lsn >> 32n).toString(16).toUpperCase();
  const lo = (lsn & 0xffffffffn).toString(16).toUpperCase();
  return `${hi}/${lo}`;
}

/** Bytes from b to a (negative when a is behind b), like pg_wal_lsn_diff(a, b). */
export function lsnDiff(a: Lsn, b: Lsn): bigint {
  return a - b;
}

/** The furthest of the given positions; InvalidLsn when given none. */
export function maxLsn(...lsns: Lsn[]): Lsn {
  let max = InvalidLsn;
  for (const lsn of lsns) if (lsn > max) max = lsn;
  return max;
}

function assertLsn(lsn: Lsn): void {
  if (typeof lsn !== 'bigint' || lsn < 0n || lsn > MAX_LSN) {
    throw new RangeError(`invalid LSN ${String(lsn)}: expected a bigint between 0 and 2^64-1`);
  }
}
