/*
 * rebuild-catalog: recreates a server's part of the catalog from the repository files alone:
 * identity.json, every base/<id>/backup.info, and the wals/ tree (segment names, sizes and
 * SHA-256 read back through the store workers, history files). The files are the source of truth.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isWalSegmentName, parseTimelineHistory, parseWalFileName } from 'pg-replication';
import type { Catalog, HistoryFileRecord, NewBackupRecord, WalSegmentRecord } from '../catalog/index.js';
import { BarmantsError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { codecFromFileName, readIdentity, stripCodecSuffix, StoreWorkerPool, type ServerLayout } from '../repository/index.js';
import { readBackupInfo } from './info.js';
import { BACKUP_ID_RE } from './time.js';

export interface RebuildReport {
  server: string;
  backups: number;
  walSegments: number;
  historyFiles: number;
  skipped: string[];
  seconds: number;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

const HISTORY_RE = /^([0-9A-F]{8})\.history$/;

export async function rebuildCatalog(catalog: Catalog, layout: ServerLayout, log: Logger, opts: { pool?: StoreWorkerPool } = {}): Promise<RebuildReport> {
  const t0 = Date.now();
  const skipped: string[] = [];
  const identity = await readIdentity(layout);

  const backups: NewBackupRecord[] = [];
  for (const id of await listDir(layout.baseDir)) {
    if (!BACKUP_ID_RE.test(id)) {
      skipped.push(join(layout.baseDir, id));
      continue;
    }
    try {
      const b = await readBackupInfo(layout, id);
      if (b.backupId !== id || b.server !== layout.server) {
        skipped.push(`${layout.backupInfoFile(id)} (describes ${b.server}/${b.backupId})`);
        continue;
      }
      backups.push(b);
    } catch (err) {
      skipped.push(`${layout.backupInfoFile(id)} (${(err as Error).message})`);
    }
  }

  const segSize = identity?.walSegmentSize ?? backups.find((b) => b.walSegmentSize)?.walSegmentSize ?? null;
  const segments: WalSegmentRecord[] = [];
  const history: HistoryFileRecord[] = [];
  const pool = opts.pool ?? new StoreWorkerPool();
  try {
    const jobs: Promise<void>[] = [];
    for (const entry of await listDir(layout.walsDir)) {
      const path = join(layout.walsDir, entry);
      const h = HISTORY_RE.exec(entry);
      if (h) {
        const content = await readFile(path);
        const lines = parseTimelineHistory(content.toString('utf8'));
        const last = lines[lines.length - 1];
        if (!last) {
          skipped.push(`${path} (lists no parent timeline)`);
          continue;
        }
        history.push({
          server: layout.server, tli: parseInt(h[1]!, 16), name: entry, parentTli: last.tli, switchLsn: last.switchLsn,
          checksum: createHash('sha256').update(content).digest('hex'), archivedAt: (await stat(path)).mtime.toISOString(),
        });
        continue;
      }
      if (!/^[0-9A-F]{16}$/.test(entry)) {
        if (!entry.endsWith('.tmp')) skipped.push(path);
        continue;
      }
      for (const file of await listDir(path)) {
        const fpath = join(path, file);
        const name = stripCodecSuffix(file);
        if (!isWalSegmentName(name) || name.slice(0, 16) !== entry || segSize === null) {
          // Archived .partial files and leftovers are not segments; they stay on disk.
          if (!file.endsWith('.tmp') && !name.endsWith('.partial')) skipped.push(fpath);
          continue;
        }
        const codec = codecFromFileName(file);
        jobs.push(
          (async () => {
            const [d, st] = await Promise.all([pool.hashFile(fpath, codec, 'sha256'), stat(fpath)]);
            if (d.size !== segSize) {
              skipped.push(`${fpath} (${d.size} bytes, a segment has ${segSize})`);
              return;
            }
            const { tli, segno } = parseWalFileName(name, segSize);
            segments.push({
              server: layout.server, timeline: tli, segno, name, size: d.size, storedSize: d.storedSize, compression: codec === 'none' ? null : codec,
              checksum: d.checksum, archivedAt: st.mtime.toISOString(),
            });
          })().catch((err) => {
            skipped.push(`${fpath} (${(err as Error).message})`);
          }),
        );
      }
    }
    await Promise.all(jobs);
  } finally {
    if (!opts.pool) await pool.close();
  }
  segments.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const systemId = identity?.systemId ?? backups.find((b) => b.systemId)?.systemId ?? null;
  if (identity === null && backups.length === 0 && segments.length === 0) {
    const listed = catalog.listBackups(layout.server).length;
    const listedWal = catalog.countWalSegments(layout.server);
    if (listed === 0 && listedWal === 0) {
      throw new BarmantsError('notFound', `nothing to rebuild for server '${layout.server}': ${layout.dir} holds no identity.json, backup or WAL`);
    }
    // The directory is gone (removed by hand, or never there): the catalog forgets what it listed,
    // and with it the old cluster's identity, so that the server can be backed up afresh.
    log.warn(`rebuild-catalog: ${layout.dir} holds nothing; the catalog forgets the ${listed} backup(s) and ${listedWal} WAL segment(s) it listed for server '${layout.server}'`);
  }
  catalog.transaction(() => {
    catalog.upsertServer({
      name: layout.server,
      systemId,
      pgVersion: identity?.pgVersion ?? backups[backups.length - 1]?.pgVersion ?? null,
      walSegmentSize: segSize,
    });
    catalog.clearServer(layout.server);
    for (const b of backups) catalog.insertBackup(b);
    catalog.addWalSegments(segments);
    for (const h of history) catalog.addHistoryFile(h);
  });
  for (const s of skipped) log.warn(`rebuild-catalog: skipped ${s}`);
  log.info(`rebuilt the catalog of server '${layout.server}': ${backups.length} backup(s), ${segments.length} WAL segment(s), ${history.length} history file(s)`);
  return { server: layout.server, backups: backups.length, walSegments: segments.length, historyFiles: history.length, skipped, seconds: (Date.now() - t0) / 1000 };
}
