/*
 * Archiving into `wals/`: a complete WAL segment (compressed per `compression`, off the main
 * thread), a timeline history file, or the last `.partial` segment a timeline switch left behind.
 * Shared by the WAL receiver and the backup executor. Every file is durable before the catalog
 * mentions it; the same content twice is fine, different content is set aside in `errors/`.
 */
import { createHash } from 'node:crypto';
import { access, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseTimelineHistory, parseWalFileName, historyFileName } from 'pg-replication';
import { type Catalog, type WalSegmentRecord, WalSegmentConflictError, HistoryFileConflictError } from '../catalog/index.js';
import { BarmantsError } from '../errors/index.js';
import { failpoint } from '../failpoint/index.js';
import {
  type Codec, type ServerLayout, type StoredFile, defaultStorePool, ensureDir, linkDurable, renameDurable, writeFileDurable, codecSuffix,
  storeFile, zstdFromZlib,
} from '../repository/index.js';

export type ArchiveOutcome = 'added' | 'exists' | 'duplicate';

export interface ArchivedSegment {
  outcome: ArchiveOutcome;
  name: string;
  /** the stored file (for 'added' and 'exists'); the file set aside in errors/ for 'duplicate' */
  path: string;
  record: WalSegmentRecord | null;
}

export interface SegmentSource {
  layout: ServerLayout;
  catalog: Catalog;
  /** segment file name, `TTTTTTTTXXXXXXXXYYYYYYYY` */
  name: string;
  segSize: number;
  /** an uncompressed, complete segment on disk; it is moved to errors/ when it is a conflicting duplicate */
  sourcePath: string;
  codec: Codec;
  level?: number;
  /**
   * sha256 of the content, when the caller computed it while writing the source: an uncompressed
   * segment is then archived as a hard link (no copy, no read-back), and a segment already
   * archived is compared without reading it.
   */
  checksum?: string;
}

/** `errors/<name>.<YYYYMMDDTHHMMSSZ>.<reason>` (REPOSITORY.md). */
export function errorsPath(layout: ServerLayout, name: string, reason: string, when = new Date()): string {
  const ts = when.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${layout.errorsDir}/${name}.${ts}.${reason}`;
}

/** Moves a file into errors/ durably; returns where it went. Never deletes. */
export async function setAside(layout: ServerLayout, path: string, reason: string): Promise<string> {
  await ensureDir(layout.errorsDir);
  let dest = errorsPath(layout, basename(path), reason);
  for (let i = 1; ; i++) {
    try {
      await access(dest);
      dest = `${errorsPath(layout, basename(path), reason)}.${i}`;
    } catch {
      break;
    }
  }
  await renameDurable(path, dest);
  return dest;
}

/**
 * Stores a complete segment in `wals/<hash>/<name>[suffix]` and records it. Idempotent: a segment
 * already archived with the same checksum is 'exists'; different content is moved to errors/ as
 * `.duplicate` ('duplicate'), and the archived copy is kept.
 */
export async function archiveSegment(src: SegmentSource): Promise<ArchivedSegment> {
  const { layout, catalog, name, segSize, sourcePath } = src;
  const { tli, segno } = parseWalFileName(name, segSize);
  const pool = defaultStorePool();
  const known = catalog.getWalSegment(layout.server, name);
  if (known) {
    const digest = src.checksum !== undefined ? { checksum: src.checksum } : await pool.hashFile(sourcePath, 'none', 'sha256');
    if (digest.checksum === known.checksum) {
      return { outcome: 'exists', name, path: layout.walFilePath(name, (known.compression ?? 'none') as Codec), record: known };
    }
    const aside = await setAside(layout, sourcePath, 'duplicate');
    return { outcome: 'duplicate', name, path: aside, record: null };
  }
  await ensureDir(layout.walDirFor(name));
  const dest = layout.walFilePath(name, src.codec);
  const stored = (await linkSegment(src, dest)) ?? (await storeSegmentFile(src, dest));
  if (stored.size !== segSize) {
    throw new BarmantsError('integrity', `segment ${name} has ${stored.size} bytes, expected ${segSize}`);
  }
  failpoint('wal-after-store-before-catalog');
  const record: WalSegmentRecord = {
    server: layout.server,
    timeline: tli,
    segno,
    name,
    size: stored.size,
    storedSize: stored.storedSize,
    compression: src.codec === 'none' ? null : src.codec,
    checksum: stored.checksum,
    archivedAt: new Date().toISOString(),
  };
  try {
    catalog.addWalSegment(record);
    failpoint('wal-after-catalog-before-unlink');
    return { outcome: 'added', name, path: dest, record };
  } catch (err) {
    if (err instanceof WalSegmentConflictError) {
      const aside = await setAside(layout, sourcePath, 'duplicate');
      return { outcome: 'duplicate', name, path: aside, record: null };
    }
    throw err;
  }
}

/**
 * An uncompressed segment whose checksum the caller knows becomes a second name of the same
 * file (link, then fsync of the directory): the source keeps its name until the catalog has the
 * row, so a crash in between leaves it to be archived again. Null when linking is not possible
 * (another filesystem): the caller copies instead.
 */
async function linkSegment(src: SegmentSource, dest: string): Promise<{ checksum: string; size: number; storedSize: number } | null> {
  if (src.codec !== 'none' || src.checksum === undefined) return null;
  try {
    await linkDurable(src.sourcePath, dest);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK' || code === 'ENOTSUP') return null;
    throw err;
  }
  const { size } = await stat(dest);
  return { checksum: src.checksum, size, storedSize: size };
}

/**
 * Stores the last segment of a finished timeline as `wals/<hash>/<name>.partial[suffix]`, as
 * PostgreSQL's archiver and Barman's archive-wal do. It is deliberately not a wal_segments row:
 * it holds WAL only up to the switch point, and recovery reads that segment from the new
 * timeline, whose first segment starts with the same bytes. `get-wal --partial` serves it.
 */
export async function archivePartialSegment(src: SegmentSource): Promise<{ path: string; checksum: string }> {
  const { layout, name } = src;
  parseWalFileName(name, src.segSize);
  await ensureDir(layout.walDirFor(name));
  const dest = layout.walFilePath(`${name}.partial`, src.codec);
  const stored = await storeSegmentFile(src, dest);
  return { path: dest, checksum: stored.checksum };
}

/**
 * Compresses and stores one segment off the main thread. gzip (node:zlib), lz4 (lz4-napi) and
 * zstd from node:zlib do their work on libuv's thread pool already, so the segment is stored from
 * this thread and only hashing (about 10 ms per 16 MiB) runs on it; zstd-napi compresses
 * synchronously and goes to a store worker. A worker thread cost a receiver ~50 MB of resident
 * memory for one segment every few seconds (receive-wal with gzip under pgbench: 143 MB peak with
 * the worker, 92 MB without).
 */
function storeSegmentFile(src: SegmentSource, dest: string): Promise<StoredFile> {
  const job = { source: src.sourcePath, dest, codec: src.codec, ...(src.level !== undefined ? { level: src.level } : {}) };
  return src.codec === 'zstd' && !zstdFromZlib ? defaultStorePool().storeFile(job) : storeFile(job);
}

/** The suffix-aware path of an archived `.partial` (codec as configured now). */
export function archivedPartialPath(layout: ServerLayout, name: string, codec: Codec): string {
  return `${layout.walDirFor(name)}/${name}.partial${codecSuffix(codec)}`;
}

/**
 * Stores `wals/TTTTTTTT.history` (never compressed) and records the switch it describes. Same
 * content twice is 'exists'; different content goes to errors/ as `.duplicate`.
 */
export async function archiveHistoryFile(
  layout: ServerLayout,
  catalog: Catalog,
  tli: number,
  content: Buffer,
): Promise<{ outcome: ArchiveOutcome; path: string }> {
  const name = historyFileName(tli);
  const entries = parseTimelineHistory(content.toString('utf8'));
  const last = entries[entries.length - 1];
  if (!last) throw new BarmantsError('integrity', `history file ${name} lists no parent timeline`);
  const checksum = createHash('sha256').update(content).digest('hex');
  const rec = {
    server: layout.server, tli, name, parentTli: last.tli, switchLsn: last.switchLsn, checksum, archivedAt: new Date().toISOString(),
  };
  const known = catalog.getHistoryFile(layout.server, tli);
  const path = layout.walFilePath(name, 'none');
  if (known && known.checksum === checksum) return { outcome: 'exists', path };
  if (known) {
    await ensureDir(layout.errorsDir);
    const aside = errorsPath(layout, name, 'duplicate');
    await writeFileDurable(aside, content);
    return { outcome: 'duplicate', path: aside };
  }
  await ensureDir(layout.walsDir);
  await writeFileDurable(path, content);
  try {
    catalog.addHistoryFile(rec);
  } catch (err) {
    if (err instanceof HistoryFileConflictError) {
      const aside = errorsPath(layout, name, 'duplicate');
      await writeFileDurable(aside, content);
      return { outcome: 'duplicate', path: aside };
    }
    throw err;
  }
  return { outcome: 'added', path };
}
