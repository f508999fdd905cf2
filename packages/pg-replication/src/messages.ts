/*
 * Codecs for the CopyData payloads of physical streaming replication, in the shape of
 * pg-protocol's messages: XLogData ('w') and primary keepalive ('k') from the server, the standby
 * status update ('r') from us. Pure functions over buffers; no sockets. Layouts are in the
 * PostgreSQL docs, "Streaming Replication Protocol".
 */
import { ReplicationError } from './errors.js';

export const enum CopyDataCode {
  XLogData = 0x77, // w
  Keepalive = 0x6b, // k
  StatusUpdate = 0x72, // r
  // BASE_BACKUP typed CopyData, PostgreSQL 15+
  NewArchive = 0x6e, // n
  ArchiveData = 0x64, // d
  Progress = 0x70, // p
  Manifest = 0x6d, // m
}

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;

export function nowPgTimestamp(nowMs: number = Date.now()): bigint {
  return BigInt(nowMs) * 1000n - PG_EPOCH_OFFSET_US;
}

export function pgTimestampToDate(ts: bigint): Date {
  return new Date(Number((ts + PG_EPOCH_OFFSET_US) / 1000n));
}

export interface XLogDataHeader {
  readonly type: 'xlogdata';
  /** LSN of the first byte of `data` */
  readonly walStart: bigint;
  /** the server's current end of WAL */
  readonly walEnd: bigint;
  readonly sendTime: bigint;
}

export interface KeepaliveMessage {
  readonly type: 'keepalive';
  readonly walEnd: bigint;
  readonly sendTime: bigint;
  readonly replyRequested: boolean;
}

const XLOGDATA_HEADER = 1 + 8 + 8 + 8;

/** Parses the header of a 'w' message; the WAL bytes are `buf.subarray(XLOGDATA_HEADER_SIZE)`. */
export function parseXLogDataHeader(buf: Buffer): XLogDataHeader {
  if (buf.length < XLOGDATA_HEADER || buf[0] !== CopyDataCode.XLogData) {
    throw new ReplicationError('protocol', `malformed XLogData message (${buf.length} bytes)`);
  }
  return {
    type: 'xlogdata',
    walStart: buf.readBigUInt64BE(1),
    walEnd: buf.readBigUInt64BE(9),
    sendTime: buf.readBigInt64BE(17),
  };
}
export const XLOGDATA_HEADER_SIZE = XLOGDATA_HEADER;

export function parseKeepalive(buf: Buffer): KeepaliveMessage {
  if (buf.length < 18 || buf[0] !== CopyDataCode.Keepalive) {
    throw new ReplicationError('protocol', `malformed keepalive message (${buf.length} bytes)`);
  }
  return {
    type: 'keepalive',
    walEnd: buf.readBigUInt64BE(1),
    sendTime: buf.readBigInt64BE(9),
    replyRequested: buf[17] === 1,
  };
}

export interface StatusUpdate {
  /** last WAL byte + 1 received */
  readonly write: bigint;
  /** last WAL byte + 1 durably on disk */
  readonly flush: bigint;
  /** last WAL byte + 1 applied (0 when not applicable) */
  readonly apply: bigint;
  readonly replyRequested?: boolean;
}

/** Serialises an 'r' standby status update (34 bytes). */
export function serializeStatusUpdate(s: StatusUpdate, nowMs: number = Date.now()): Buffer {
  const buf = Buffer.alloc(34);
  buf[0] = CopyDataCode.StatusUpdate;
  buf.writeBigUInt64BE(s.write, 1);
  buf.writeBigUInt64BE(s.flush, 9);
  buf.writeBigUInt64BE(s.apply, 17);
  buf.writeBigInt64BE(nowPgTimestamp(nowMs), 25);
  buf[33] = s.replyRequested ? 1 : 0;
  return buf;
}

/** Builders for tests and tools that play the server side of the codec. */
export function buildXLogData(walStart: bigint, walEnd: bigint, data: Buffer, sendTime = nowPgTimestamp()): Buffer {
  const buf = Buffer.alloc(XLOGDATA_HEADER + data.length);
  buf[0] = CopyDataCode.XLogData;
  buf.writeBigUInt64BE(walStart, 1);
  buf.writeBigUInt64BE(walEnd, 9);
  buf.writeBigInt64BE(sendTime, 17);
  data.copy(buf, XLOGDATA_HEADER);
  return buf;
}

export function buildKeepalive(walEnd: bigint, replyRequested: boolean, sendTime = nowPgTimestamp()): Buffer {
  const buf = Buffer.alloc(18);
  buf[0] = CopyDataCode.Keepalive;
  buf.writeBigUInt64BE(walEnd, 1);
  buf.writeBigInt64BE(sendTime, 9);
  buf[17] = replyRequested ? 1 : 0;
  return buf;
}
