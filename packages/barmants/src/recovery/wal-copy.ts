/*
 * The WAL a restore needs, as a list of files to place in DEST/barmants_wal/: archived segments
 * (decompressed and checked against their catalog checksum), the history files of the timelines
 * on the way, and the `.partial` still being received, under its segment name (zero-padded, as
 * pg_receivewal users do), so that recovery to the end loses no acknowledged commit.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { walFileName, historyFileName } from 'pg-replication/wal';
import type { Catalog } from '../catalog/index.js';
import { BarmantsError } from '../errors/index.js';
import { createDecompressor, isCodec, type Codec } from '../repository/codec.js';
import { writeAll } from '../repository/durable.js';
import type { ServerLayout } from '../repository/layout.js';
import type { RecoveryPlan } from './plan.js';
import type { StoreWorkerPool } from '../repository/store.js';
import { decodeFileSync, isSyncCodec } from './restore-file.js';

export interface WalFileToCopy {
  /** name in barmants_wal/ */
  name: string;
  source: string;
  codec: Codec;
  /** sha256 of the content; null for the .partial, which has none yet */
  sha256: string | null;
  /** uncompressed size when known */
  size: number | null;
  kind: 'segment' | 'history' | 'partial';
}

/** Every WAL file the plan needs, in replay order (history files first). */
export function walFilesForPlan(catalog: Catalog, layout: ServerLayout, plan: RecoveryPlan, opts: { partial?: boolean } = {}): WalFileToCopy[] {
  const withPartial = plan.includePartial && (opts.partial ?? true);
  const server = layout.server;
  const segSize = plan.backup.walSegmentSize;
  const out: WalFileToCopy[] = [];
  for (const h of catalog.listHistoryFiles(server)) {
    if (h.tli > plan.targetTli) continue; // a newer timeline's history would tempt recovery_target_timeline=latest
    out.push({ name: historyFileName(h.tli), source: layout.walFilePath(historyFileName(h.tli), 'none'), codec: 'none', sha256: /^[0-9a-f]{64}$/.test(h.checksum) ? h.checksum : null, size: null, kind: 'history' });
  }
  const last = plan.walSegments[plan.walSegments.length - 1];
  for (const r of plan.walSegments) {
    const to = plan.includePartial && r === last ? r.toSegno - 1n : r.toSegno;
    const recs = to >= r.fromSegno ? catalog.listWalSegments(server, { timeline: r.tli, fromSegno: r.fromSegno, toSegno: to }) : [];
    const bySegno = new Map(recs.map((w) => [w.segno, w]));
    for (let segno = r.fromSegno; segno <= to; segno++) {
      const w = bySegno.get(segno);
      if (w === undefined) {
        throw new BarmantsError('gap', `WAL segment ${walFileName(r.tli, segno, segSize)} is not in the catalog any more`, {
          hint: 'it was there when the recovery was planned: is retention running? rerun the recovery',
        });
      }
      const codec = w.compression && isCodec(w.compression) ? w.compression : 'none';
      out.push({ name: w.name, source: layout.walFilePath(w.name, codec), codec, sha256: w.checksum, size: w.size, kind: 'segment' });
    }
    if (withPartial && r === last) {
      const name = walFileName(r.tli, r.toSegno, segSize);
      out.push({ name, source: layout.partialPath(name), codec: 'none', sha256: null, size: segSize, kind: 'partial' });
    }
  }
  return out;
}

/** Streams one WAL file's content (decompressed, checksum verified at the end) into `sink`. */
export async function streamWalFile(f: WalFileToCopy, sink: (source: AsyncIterable<Buffer>) => Promise<void>): Promise<number> {
  let fh;
  try {
    fh = await open(f.source, constants.O_RDONLY);
  } catch (e) {
    throw new BarmantsError('integrity', `WAL file ${f.name} is in the catalog but cannot be read (${f.source}): ${(e as Error).message}`, { cause: e });
  }
  const hash = createHash('sha256');
  let size = 0;
  const counting = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      hash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
  };
  const src = fh.createReadStream({ highWaterMark: 1 << 20 });
  try {
    if (f.codec === 'none') await pipeline(src, counting, sink);
    else await pipeline(src, createDecompressor(f.codec), counting, sink);
  } catch (e) {
    if (e instanceof BarmantsError) throw e;
    throw new BarmantsError('integrity', `WAL file ${f.name} cannot be read back (${f.source}): ${(e as Error).message}`, { cause: e });
  }
  if (f.sha256 !== null && hash.digest('hex') !== f.sha256) {
    throw new BarmantsError('integrity', `WAL file ${f.name} does not match its checksum (${f.source})`, {
      hint: 'the archive is damaged: run `barmants verify-backup`; a recovery past this segment is impossible with this archive',
    });
  }
  return size;
}

/**
 * Copies the files into `walDir` (0600), `jobs` at a time; returns the bytes written. With `pool`,
 * plain, zstd and lz4 files are copied by its workers (a restore's, so that this thread stays free
 * to feed them); gzip ones stream here.
 */
export async function copyWalFiles(files: readonly WalFileToCopy[], walDir: string, jobs: number, pool?: StoreWorkerPool): Promise<number> {
  let next = 0;
  let bytes = 0;
  let failure: unknown = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < files.length) {
      const f = files[next++]!;
      try {
        if (isSyncCodec(f.codec)) {
          bytes += pool ? await pool.copyWalFile(f, join(walDir, f.name)) : copyWalFileSync(f, join(walDir, f.name));
          continue;
        }
        const out = await open(join(walDir, f.name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          bytes += await streamWalFile(f, async (source) => {
            for await (const chunk of source) await writeAll(out, chunk);
          });
        } finally {
          await out.close();
        }
      } catch (e) {
        if (failure === null) failure = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, files.length)) }, worker));
  if (failure !== null) throw failure;
  return bytes;
}

/**
 * One WAL file (plain, zstd or lz4) copied with synchronous syscalls and checked against its catalog
 * checksum: the stream pipeline cost ~0.2 s per 16 MB segment, which a long PITR multiplies.
 */
export function copyWalFileSync(f: WalFileToCopy, target: string): number {
  const codec = f.codec;
  if (!isSyncCodec(codec)) throw new Error(`internal: ${f.name} (${codec}) is not copied synchronously`);
  let src: number;
  try {
    src = openSync(f.source, constants.O_RDONLY);
  } catch (e) {
    throw new BarmantsError('integrity', `WAL file ${f.name} is in the catalog but cannot be read (${f.source}): ${(e as Error).message}`, { cause: e });
  }
  let out: number;
  try {
    out = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    closeSync(src);
    throw new BarmantsError('io', `cannot create ${target}: ${(e as Error).message}`, { cause: e });
  }
  const unreadable = (e: unknown) => new BarmantsError('integrity', `WAL file ${f.name} cannot be read back (${f.source}): ${(e as Error).message}`, { cause: e });
  try {
    const { size, checksum } = decodeFileSync(src, codec, out, {
      alg: 'sha256',
      limit: f.size,
      readError: unreadable,
      tooLong: () => unreadable(new Error(`longer than its ${f.size} bytes`)),
      corrupt: unreadable,
    });
    if (f.sha256 !== null && checksum !== f.sha256) {
      throw new BarmantsError('integrity', `WAL file ${f.name} does not match its checksum (${f.source})`, {
        hint: 'the archive is damaged: run `barmants verify-backup`; a recovery past this segment is impossible with this archive',
      });
    }
    return size;
  } finally {
    closeSync(out);
    closeSync(src);
  }
}
