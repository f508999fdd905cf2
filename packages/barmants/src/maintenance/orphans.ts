/*
 * Orphan detection: what the files and the catalog disagree on. Backup directories without a
 * catalog row, catalog rows without a directory, WAL files the catalog does not list (or lists
 * under another compression), and `.tmp` files older than an hour that no running operation
 * holds. Everything is reported; what is provably unused is moved to errors/, never deleted.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Catalog } from '../catalog/index.js';
import type { Logger } from '../log/index.js';
import { codecFromFileName, readLockOwner, stripCodecSuffix, TMP_SUFFIX, type Codec, type ServerLayout } from '../repository/index.js';
import { setAside } from '../wal/index.js';

export type OrphanKind = 'backup-without-row' | 'row-without-backup' | 'wal-without-row' | 'wal-superseded' | 'stale-tmp';

export interface Orphan {
  kind: OrphanKind;
  /** path relative to the server directory, or the backup id for rows */
  what: string;
  detail: string;
  /** where it was moved (errors/...), null when only reported */
  movedTo: string | null;
}

export interface FindOrphansOptions {
  layout: ServerLayout;
  catalog: Catalog;
  logger: Logger;
  now: Date;
  /** move what is safe to move into errors/ (default true) */
  move?: boolean;
  /** age after which an unlocked `.tmp` file or unknown backup directory is stale (default 1 h) */
  staleAfterMs?: number;
}

const SEGMENT = /^[0-9A-F]{24}$/;
const HASH_DIR = /^[0-9A-F]{16}$/;

async function ageMs(path: string, now: Date): Promise<number | null> {
  try {
    return now.getTime() - (await stat(path)).mtimeMs;
  } catch {
    return null;
  }
}

async function listDir(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

async function tmpFiles(dir: string): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    if (!e.isFile() || !e.name.endsWith(TMP_SUFFIX)) continue;
    const parent = (e as unknown as { parentPath?: string; path?: string }).parentPath ?? (e as unknown as { path: string }).path;
    out.push(join(parent, e.name));
  }
  return out;
}

export async function findOrphans(o: FindOrphansOptions): Promise<Orphan[]> {
  const { layout, catalog, now } = o;
  const server = layout.server;
  const move = o.move ?? true;
  const staleAfter = o.staleAfterMs ?? 3_600_000;
  const log = o.logger.child({ server, component: 'orphans' });
  const out: Orphan[] = [];
  const rel = (p: string): string => relative(layout.dir, p);
  const report = async (kind: OrphanKind, path: string | null, what: string, detail: string, canMove: boolean): Promise<void> => {
    let movedTo: string | null = null;
    if (move && canMove && path !== null) {
      try {
        movedTo = rel(await setAside(layout, path, kind));
      } catch (err) {
        detail += `; could not move it to errors/: ${(err as Error).message}`;
      }
    }
    out.push({ kind, what, detail, movedTo });
    log.warn(`orphan (${kind}) ${what}: ${detail}${movedTo ? `; moved to ${movedTo}` : ''}`);
  };

  // A live backup (or delete) holds the backup lock: its directory and tmp files are in use.
  const backupBusy = (await readLockOwner(layout.lockFile('backup'))) !== null;
  const rows = new Map(catalog.listBackups(server).map((b) => [b.backupId, b]));

  // --- base/: directories and rows
  const dirs = new Set<string>();
  for (const e of await listDir(layout.baseDir)) {
    if (!e.isDirectory()) continue;
    dirs.add(e.name);
    if (rows.has(e.name)) continue;
    const path = join(layout.baseDir, e.name);
    const age = await ageMs(path, now);
    const stale = !backupBusy && age !== null && age >= staleAfter;
    await report('backup-without-row', path, `base/${e.name}`,
      `backup directory without a catalog row (run \`barmants rebuild-catalog\` if it holds a backup.info)`, stale);
  }
  for (const [id, b] of rows) {
    if (dirs.has(id) || b.status === 'DELETING') continue;
    await report('row-without-backup', null, id, `catalog row (status ${b.status}) without its directory ${rel(layout.backupDir(id))}`, false);
  }

  // --- tmp files: base/ (not those of a running backup), wals/, streaming/
  for (const dir of [layout.baseDir, layout.walsDir, layout.streamingDir]) {
    for (const path of await tmpFiles(dir)) {
      const age = await ageMs(path, now);
      if (age === null || age < staleAfter) continue;
      const inBackup = dir === layout.baseDir ? relative(layout.baseDir, path).split('/')[0]! : null;
      const running = inBackup !== null && rows.get(inBackup)?.status === 'STARTED' && backupBusy;
      if (running) continue;
      await report('stale-tmp', path, rel(path), `temporary file untouched for ${Math.round(age / 60000)} min: an interrupted write`, true);
    }
  }

  // --- wals/: one catalog query per hash directory (timeline + log)
  const segSize = catalog.getServer(server)?.walSegmentSize ?? null;
  if (segSize) {
    const perLog = 0x1_0000_0000n / BigInt(segSize);
    for (const d of await listDir(layout.walsDir)) {
      if (!d.isDirectory() || !HASH_DIR.test(d.name)) continue;
      const tli = Number.parseInt(d.name.slice(0, 8), 16);
      const first = BigInt(`0x${d.name.slice(8)}`) * perLog;
      const known = new Map(
        catalog.listWalSegments(server, { timeline: tli, fromSegno: first, toSegno: first + perLog - 1n }).map((s) => [s.name, s]),
      );
      for (const f of await listDir(join(layout.walsDir, d.name))) {
        if (!f.isFile() || f.name.endsWith(TMP_SUFFIX)) continue;
        const name = stripCodecSuffix(f.name);
        if (!SEGMENT.test(name)) continue;
        const path = join(layout.walsDir, d.name, f.name);
        const row = known.get(name);
        const codec = codecFromFileName(f.name);
        if (!row) {
          await report('wal-without-row', null, rel(path), 'WAL file the catalog does not list (run `barmants rebuild-catalog` to index it)', false);
        } else if ((row.compression ?? 'none') !== codec) {
          // The catalog names another copy (the compression pass switched to it): this one is a leftover.
          const kept = layout.walFilePath(name, (row.compression ?? 'none') as Codec);
          const keptExists = (await ageMs(kept, now)) !== null;
          await report('wal-superseded', path, rel(path),
            `leftover copy: the catalog records this segment with compression ${row.compression ?? 'none'}${keptExists ? '' : ` but ${rel(kept)} is missing`}`, keptExists);
        }
      }
    }
  }
  return out;
}
