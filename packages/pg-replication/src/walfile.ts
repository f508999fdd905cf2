/*
 * WAL segment arithmetic and file names for any wal_segment_size (a power of two, 1 MB to 1 GB),
 * as xlog_internal.h defines them. Streaming, archiving and recovery planning all name and order
 * segments through these functions, so nothing else may assume 16 MB.
 */
import type { Lsn } from './lsn.js';

const MIN_SEG_SIZE = 1024 * 1024;
const MAX_SEG_SIZE = 1024 * 1024 * 1024;
const XLOG_ID_SPAN = 0x100000000n; // bytes covered by one "log id" (the middle 8 hex digits)
const MAX_U32 = 0xffffffff;

const WAL_SEGMENT_NAME = /^[0-9A-F]{24}$/;
const PARTIAL_WAL_NAME = /^[0-9A-F]{24}\.partial$/;
const HISTORY_FILE_NAME = /^[0-9A-F]{8}\.history$/;
const BACKUP_HISTORY_NAME = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;

const UNIT_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/**
 * Parses the value of `SHOW wal_segment_size` (`16MB`, `1MB`, `1GB`, or a bare byte count) and
 * checks it is a segment size PostgreSQL allows.
 */
export function parseWalSegmentSize(text: string): number {
  const m = /^\s*(\d+)\s*([A-Za-z]*)\s*$/.exec(text);
  const unit = m === null ? undefined : UNIT_BYTES[(m[2] || 'B').toLowerCase()];
  if (m === null || unit === undefined) {
    throw new TypeError(
      `invalid wal_segment_size ${JSON.stringify(text)}: expected a size such as 16MB, 1GB or a number of bytes`,
    );
  }
  const bytes = Number(m[1]) * unit;
  if (!isValidSegSize(bytes)) {
    throw new RangeError(
      `invalid wal_segment_size ${JSON.stringify(text)}: expected a power of two between 1MB and 1GB`,
    );
  }
  return bytes;
}

/** How many segments share one log id (the middle part of a WAL file name). */
export function segmentsPerXLogId(segSize: number): bigint {
  return XLOG_ID_SPAN / seg(segSize);
}

/** The segment number holding the byte at `lsn` (XLByteToSeg). */
export function segmentOf(lsn: Lsn, segSize: number): bigint {
  return lsn / seg(segSize);
}

/** The LSN of a segment's first byte (XLogSegNoOffsetToRecPtr with offset 0). */
export function segmentStart(segno: bigint, segSize: number): Lsn {
  return segno * seg(segSize);
}

/** Byte offset of `lsn` inside its segment (XLogSegmentOffset). */
export function segmentOffset(lsn: Lsn, segSize: number): number {
  return Number(lsn % seg(segSize));
}

/** `TTTTTTTTXXXXXXXXYYYYYYYY`, as XLogFileName prints it. */
export function walFileName(tli: number, segno: bigint, segSize: number): string {
  assertTli(tli);
  const per = segmentsPerXLogId(segSize);
  if (segno < 0n || segno / per > BigInt(MAX_U32)) {
    throw new RangeError(`segment number ${segno} is out of range for wal_segment_size ${segSize}`);
  }
  return hex8(BigInt(tli)) + hex8(segno / per) + hex8(segno % per);
}

/** Inverse of walFileName; rejects anything but a 24-digit uppercase segment name valid for segSize. */
export function parseWalFileName(name: string, segSize: number): { tli: number; segno: bigint } {
  if (!isWalSegmentName(name)) {
    throw new TypeError(`invalid WAL file name ${JSON.stringify(name)}: expected 24 uppercase hexadecimal digits`);
  }
  const tli = Number.parseInt(name.slice(0, 8), 16);
  const log = BigInt('0x' + name.slice(8, 16));
  const segInLog = BigInt('0x' + name.slice(16, 24));
  const per = segmentsPerXLogId(segSize);
  if (tli === 0) {
    throw new TypeError(`invalid WAL file name ${JSON.stringify(name)}: timeline 0 does not exist`);
  }
  if (segInLog >= per) {
    throw new TypeError(
      `invalid WAL file name ${JSON.stringify(name)}: segment part exceeds ${hex8(per - 1n)} for wal_segment_size ${segSize}`,
    );
  }
  return { tli, segno: log * per + segInLog };
}

/** A complete WAL segment name (IsXLogFileName). */
export function isWalSegmentName(name: string): boolean {
  return WAL_SEGMENT_NAME.test(name);
}

/** A segment still being received, or the last one of a timeline left behind by a promotion. */
export function isPartialWalName(name: string): boolean {
  return PARTIAL_WAL_NAME.test(name);
}

/** A timeline history file, `TTTTTTTT.history`. */
export function isHistoryFileName(name: string): boolean {
  return HISTORY_FILE_NAME.test(name);
}

/** `TTTTTTTT.history`, as TLHistoryFileName prints it. */
export function historyFileName(tli: number): string {
  assertTli(tli);
  return `${hex8(BigInt(tli))}.history`;
}

/** A backup history file, `<segment>.<offset>.backup`, written at the end of an exclusive/online backup. */
export function isBackupHistoryName(name: string): boolean {
  return BACKUP_HISTORY_NAME.test(name);
}

/**
 * The `wals/` subdirectory a file lives in, as Barman lays it out: the timeline and log id
 * (first 16 characters) for segments, partials and backup history files; '' for timeline
 * history files, which sit at the top of `wals/`.
 */
export function walHashDir(name: string): string {
  if (isHistoryFileName(name)) return '';
  if (isWalSegmentName(name) || isPartialWalName(name) || isBackupHistoryName(name)) return name.slice(0, 16);
  throw new TypeError(`invalid WAL file name ${JSON.stringify(name)}: not a segment, partial, history or backup file`);
}

/** Name of the segment on timeline `tli` that holds the byte at `lsn`. */
export function walFileNameOfLsn(tli: number, lsn: Lsn, segSize: number): string {
  return walFileName(tli, segmentOf(lsn, segSize), segSize);
}

/** The segment after `name` on the same timeline (crossing log ids: ...000000FF → ...0000000100000000 for 16 MB). */
export function nextSegmentName(name: string, segSize: number): string {
  const { tli, segno } = parseWalFileName(name, segSize);
  return walFileName(tli, segno + 1n, segSize);
}

/**
 * Orders WAL archive names by timeline, then position. Names are fixed-width uppercase hex, so
 * code-unit order is numeric order; suffixed names (.partial, .backup) follow their segment.
 */
export function compareWalNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isValidSegSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_SEG_SIZE && n <= MAX_SEG_SIZE && (n & (n - 1)) === 0;
}

function seg(segSize: number): bigint {
  if (!isValidSegSize(segSize)) {
    throw new RangeError(`invalid wal_segment_size ${segSize}: expected a power of two between 1MB and 1GB`);
  }
  return BigInt(segSize);
}

function assertTli(tli: number): void {
  if (!Number.isInteger(tli) || tli < 1 || tli > MAX_U32) {
    throw new RangeError(`invalid timeline ${tli}: expected an integer between 1 and 4294967295`);
  }
}

function hex8(n: bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}
