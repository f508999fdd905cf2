/*
 * The WAL compression pass: segments archived uncompressed (before `compression` was set, or by
 * an older barmants) are compressed in the store worker threads, their checksum re-verified, the
 * compressed file made durable and recorded in the catalog, and only then the original removed.
 * A crash at any point leaves either the old file (catalog unchanged) or both files (catalog on
 * the new one; the orphan scan reports the old one).
 */
import { stat } from 'node:fs/promises';
import type { Catalog, WalSegmentRecord } from '../catalog/index.js';
import type { ServerConfig } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { removeDurable, type Codec, type ServerLayout, type StoreWorkerPool } from '../repository/index.js';

export interface CompressWalOptions {
  server: ServerConfig;
  layout: ServerLayout;
  catalog: Catalog;
  logger: Logger;
  pool: StoreWorkerPool;
  signal?: AbortSignal;
  /** segments per pass at most (the next pass continues); default unlimited */
  limit?: number;
}

export interface CompressWalResult {
  codec: Codec;
  compressed: string[];
  bytesBefore: number;
  bytesAfter: number;
  failed: { name: string; error: string }[];
}

const SEGMENT = /^[0-9A-F]{24}$/;
const PAGE = 5000;

/** Uncompressed segments of the server, oldest first, read page by page from the catalog. */
function* uncompressedSegments(catalog: Catalog, server: string): Generator<WalSegmentRecord> {
  for (const timeline of catalog.listTimelines(server)) {
    let from = 0n;
    for (;;) {
      const page = catalog.listWalSegments(server, { timeline, fromSegno: from, limit: PAGE });
      for (const s of page) if ((s.compression === null || s.compression === 'none') && SEGMENT.test(s.name)) yield s;
      if (page.length < PAGE) break;
      from = page[page.length - 1]!.segno + 1n;
    }
  }
}

export async function compressWal(o: CompressWalOptions): Promise<CompressWalResult> {
  const codec = o.server.walCompression.codec as Codec;
  const level = o.server.walCompression.level;
  const out: CompressWalResult = { codec, compressed: [], bytesBefore: 0, bytesAfter: 0, failed: [] };
  if (codec === 'none') return out;
  const log = o.logger.child({ server: o.server.name, component: 'compress-wal' });
  const todo: WalSegmentRecord[] = [];
  for (const s of uncompressedSegments(o.catalog, o.server.name)) {
    todo.push(s);
    if (o.limit !== undefined && todo.length >= o.limit) break;
  }
  if (todo.length === 0) return out;
  log.info(`compressing ${todo.length} WAL segment(s) stored uncompressed with ${codec}`);

  const one = async (seg: WalSegmentRecord): Promise<void> => {
    const src = o.layout.walFilePath(seg.name, 'none');
    const dest = o.layout.walFilePath(seg.name, codec);
    try {
      await stat(src);
    } catch {
      out.failed.push({ name: seg.name, error: `${src} is missing` });
      log.warn(`WAL segment ${seg.name} is in the catalog but ${src} is missing: not compressed (see the orphan report)`);
      return;
    }
    try {
      const stored = await o.pool.storeFile({ source: src, dest, codec, ...(level !== undefined ? { level } : {}) });
      if (stored.checksum !== seg.checksum || stored.size !== seg.size) {
        await removeDurable(dest);
        throw new Error(`content differs from the catalog (sha256 ${stored.checksum}, ${stored.size} bytes; catalog ${seg.checksum}, ${seg.size} bytes): left uncompressed`);
      }
      // The compressed file is durable and verified: switch the catalog to it, then drop the original.
      o.catalog.transaction(() => {
        o.catalog.deleteWalSegments(o.server.name, [seg.name]);
        o.catalog.addWalSegment({ ...seg, compression: codec, storedSize: stored.storedSize });
      });
      await removeDurable(src);
      out.compressed.push(seg.name);
      out.bytesBefore += seg.storedSize;
      out.bytesAfter += stored.storedSize;
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      out.failed.push({ name: seg.name, error });
      log.error(`cannot compress WAL segment ${seg.name}: ${error}`);
    }
  };

  // As many in flight as the pool has workers: the main thread only waits.
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(o.pool.size, todo.length)) }, async () => {
    while (next < todo.length && !o.signal?.aborted) await one(todo[next++]!);
  });
  await Promise.all(lanes);
  if (out.compressed.length) {
    log.info(
      `compressed ${out.compressed.length} WAL segment(s) with ${codec}: ${out.bytesBefore} → ${out.bytesAfter} bytes` +
        (out.failed.length ? `; ${out.failed.length} failed` : ''),
    );
  }
  return out;
}
