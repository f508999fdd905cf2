/*
 * PostgreSQL backup manifests (`backup_manifest`, versions 1 and 2): parsed into plain data and
 * checked against their own Manifest-Checksum. Backups are verified file by file against this,
 * and version 2's System-Identifier ties a backup to its cluster, so it is kept exact.
 */
import { createHash } from 'node:crypto';
import { isChecksumAlgorithm, type ChecksumAlgorithm } from './checksum.js';
import { parseLsn, type Lsn } from './lsn.js';

export interface ManifestFile {
  /** Relative to the data directory (or `pg_tblspc/<oid>/...`), `/`-separated. */
  path: string;
  /** Set when the manifest gave the path as hex bytes (not valid UTF-8); `path` is then a lossy decoding. */
  encodedPath?: string;
  size: number;
  /** As printed by the server, e.g. `2024-03-01 10:00:00 GMT`. */
  lastModified: string;
  checksumAlgorithm: ChecksumAlgorithm;
  /** Lowercase hex; null when the algorithm is NONE. */
  checksum: string | null;
}

export interface ManifestWalRange {
  timeline: number;
  startLsn: Lsn;
  endLsn: Lsn;
}

export interface BackupManifest {
  version: number;
  /** Decimal text (a 64-bit number does not fit a JS number); null in version 1. */
  systemIdentifier: string | null;
  files: ManifestFile[];
  /** In the server's order: the backup's end timeline first, back to its start timeline. */
  walRanges: ManifestWalRange[];
  manifestChecksum: string;
}

/** A manifest that is malformed or whose Manifest-Checksum does not match its content. */
export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

const CHECKSUM_HEX_LENGTH: Record<ChecksumAlgorithm, number> = {
  NONE: 0,
  CRC32C: 8,
  SHA224: 56,
  SHA256: 64,
  SHA384: 96,
  SHA512: 128,
};
const CHECKSUM_LINE_START = Buffer.from('\n"Manifest-Checksum"');
const CHECKSUM_LINE = /^"Manifest-Checksum"\s*:\s*"([0-9A-Fa-f]{64})"\s*\}\s*$/;
// Rewrites the bare 64-bit number into a string before JSON.parse can round it. The pattern
// cannot match inside a JSON string: a quote there would be escaped as \".
const SYSTEM_IDENTIFIER_NUMBER = /("System-Identifier"\s*:\s*)(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
const MAX_U64 = 0xffffffffffffffffn;

/** True when the manifest's last line holds the SHA-256 of every byte before that line. */
export function verifyManifestChecksum(buf: Buffer): boolean {
  const split = splitChecksumLine(buf);
  return split !== null && split.expected === split.actual;
}

/** Parses and verifies a backup manifest; throws ManifestError when it is malformed or corrupt. */
export function parseManifest(buf: Buffer): BackupManifest {
  const split = splitChecksumLine(buf);
  if (split === null) {
    throw new ManifestError('backup manifest has no "Manifest-Checksum" line: it is truncated or not a manifest');
  }
  if (split.expected !== split.actual) {
    throw new ManifestError(
      `backup manifest checksum mismatch: the manifest says ${split.expected}, its content hashes to ${split.actual}`,
    );
  }

  let bareNumber: string | undefined; // the identifier as a JSON number token, the only form the server writes
  const text = buf.toString('utf8').replace(SYSTEM_IDENTIFIER_NUMBER, (_, key: string, digits: string) => {
    bareNumber = digits;
    return `${key}"${digits}"`;
  });
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`backup manifest is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw new ManifestError('backup manifest is not a JSON object');

  const version = doc['PostgreSQL-Backup-Manifest-Version'];
  if (version !== 1 && version !== 2) {
    throw new ManifestError(`unsupported backup manifest version ${JSON.stringify(version)}: expected 1 or 2`);
  }
  const systemIdentifier = parseSystemIdentifier(doc['System-Identifier'], bareNumber, version);

  const files = doc['Files'];
  if (!Array.isArray(files)) throw new ManifestError('backup manifest has no "Files" array');
  const walRanges = doc['WAL-Ranges'];
  if (!Array.isArray(walRanges)) throw new ManifestError('backup manifest has no "WAL-Ranges" array');

  return {
    version,
    systemIdentifier,
    files: files.map((f, i) => parseFile(f, i)),
    walRanges: walRanges.map((r, i) => parseWalRange(r, i)),
    manifestChecksum: split.expected,
  };
}

function splitChecksumLine(buf: Buffer): { expected: string; actual: string } | null {
  const at = buf.lastIndexOf(CHECKSUM_LINE_START);
  if (at < 0) return null;
  const m = CHECKSUM_LINE.exec(buf.subarray(at + 1).toString('utf8'));
  if (m === null) return null;
  const actual = createHash('sha256').update(buf.subarray(0, at + 1)).digest('hex');
  return { expected: m[1]!.toLowerCase(), actual };
}

function parseSystemIdentifier(value: unknown, bareNumber: string | undefined, version: number): string | null {
  if (value === undefined) {
    if (version >= 2) throw new ManifestError('backup manifest version 2 has no "System-Identifier"');
    return null;
  }
  if (typeof value !== 'string' || value !== bareNumber || !/^\d+$/.test(value) || BigInt(value) > MAX_U64) {
    throw new ManifestError(`backup manifest has an invalid "System-Identifier" ${JSON.stringify(value)}: expected an unsigned 64-bit integer`);
  }
  return BigInt(value).toString();
}

function parseFile(value: unknown, index: number): ManifestFile {
  const where = `backup manifest file entry ${index + 1}`;
  if (!isObject(value)) throw new ManifestError(`${where} is not an object`);

  const plain = value['Path'];
  const encoded = value['Encoded-Path'];
  let path: string;
  let encodedPath: string | undefined;
  if (typeof plain === 'string' && encoded === undefined) {
    path = plain;
  } else if (typeof encoded === 'string' && plain === undefined) {
    if (!/^(?:[0-9A-Fa-f]{2})+$/.test(encoded)) {
      throw new ManifestError(`${where} has an invalid "Encoded-Path": expected hexadecimal bytes`);
    }
    encodedPath = encoded.toLowerCase();
    path = Buffer.from(encoded, 'hex').toString('utf8');
  } else {
    throw new ManifestError(`${where} needs exactly one of "Path" and "Encoded-Path"`);
  }
  const named = `${where} (${JSON.stringify(path)})`;

  const size = value['Size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new ManifestError(`${named} has an invalid "Size" ${JSON.stringify(size)}`);
  }
  const lastModified = value['Last-Modified'];
  if (typeof lastModified !== 'string') {
    throw new ManifestError(`${named} has no "Last-Modified" text`);
  }

  const alg = value['Checksum-Algorithm'] ?? 'NONE';
  if (typeof alg !== 'string' || !isChecksumAlgorithm(alg)) {
    throw new ManifestError(`${named} has an unknown "Checksum-Algorithm" ${JSON.stringify(alg)}`);
  }
  const checksum = value['Checksum'];
  let hex: string | null = null;
  if (alg === 'NONE') {
    if (checksum !== undefined) throw new ManifestError(`${named} has a "Checksum" but no "Checksum-Algorithm"`);
  } else {
    const want = CHECKSUM_HEX_LENGTH[alg];
    if (typeof checksum !== 'string' || checksum.length !== want || !/^[0-9A-Fa-f]*$/.test(checksum)) {
      throw new ManifestError(`${named} has an invalid ${alg} "Checksum": expected ${want} hexadecimal digits`);
    }
    hex = checksum.toLowerCase();
  }

  const file: ManifestFile = { path, size, lastModified, checksumAlgorithm: alg, checksum: hex };
  if (encodedPath !== undefined) file.encodedPath = encodedPath;
  return file;
}

function parseWalRange(value: unknown, index: number): ManifestWalRange {
  const where = `backup manifest WAL range ${index + 1}`;
  if (!isObject(value)) throw new ManifestError(`${where} is not an object`);
  const timeline = value['Timeline'];
  if (typeof timeline !== 'number' || !Number.isInteger(timeline) || timeline < 1 || timeline > 0xffffffff) {
    throw new ManifestError(`${where} has an invalid "Timeline" ${JSON.stringify(timeline)}`);
  }
  const startLsn = lsnField(value['Start-LSN'], `${where} "Start-LSN"`);
  const endLsn = lsnField(value['End-LSN'], `${where} "End-LSN"`);
  if (endLsn < startLsn) throw new ManifestError(`${where} ends before it starts`);
  return { timeline, startLsn, endLsn };
}

function lsnField(value: unknown, where: string): Lsn {
  if (typeof value === 'string') {
    try {
      return parseLsn(value);
    } catch {
      // fall through to one message naming the field
    }
  }
  throw new ManifestError(`${where} is not an LSN like 0/16B3748: ${JSON.stringify(value)}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
