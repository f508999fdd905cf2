/*
 * Backup state transitions that happen outside the copy itself: a backup left STARTED by a
 * process that died becomes FAILED (its temporary files removed), and a WAITING_FOR_WALS backup
 * becomes DONE once every segment from its begin to its end WAL is in the archive.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseWalFileName } from 'pg-replication';
import type { BackupRecord, Catalog } from '../catalog/index.js';
import type { Logger } from '../log/index.js';
import { readdir } from 'node:fs/promises';
import type { ServerLayout } from '../repository/index.js';
import { writeBackupInfo } from './info.js';
import { isoLocal } from './time.js';

/** Removes `*.tmp` files left by an interrupted copy, so nothing looks complete that is not. */
export async function removeTempFiles(dir: string): Promise<number> {
  let n = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (e.isFile() && e.name.endsWith('.tmp')) {
      const parent = (e as unknown as { parentPath?: string; path?: string }).parentPath ?? (e as unknown as { path: string }).path;
      await rm(join(parent, e.name), { force: true });
      n++;
    }
  }
  return n;
}

/**
 * Called with the server's backup lock held: any STARTED backup of another process belongs to a
 * process that died (a live one would hold the lock; its pid may since have been reused).
 */
export async function repairInterruptedBackups(catalog: Catalog, layout: ServerLayout, log: Logger): Promise<BackupRecord[]> {
  const fixed: BackupRecord[] = [];
  for (const b of catalog.listBackups(layout.server, { status: ['STARTED'] })) {
    if (b.pid === process.pid) continue;
    const removed = await removeTempFiles(layout.backupDir(b.backupId));
    const rec = catalog.updateBackup(layout.server, b.backupId, {
      status: 'FAILED',
      error: `interrupted: the process that ran it (pid ${b.pid ?? '?'}) ended before the backup completed`,
      pid: null,
      endTime: b.endTime ?? isoLocal(new Date()),
    });
    await writeBackupInfo(layout, rec).catch(() => undefined);
    log.warn(`backup ${b.backupId} was interrupted (pid ${b.pid ?? '?'} is gone): marked FAILED, ${removed} temporary file(s) removed`);
    fixed.push(rec);
  }
  return fixed;
}

/** WAITING_FOR_WALS → DONE when the archive holds every segment the backup needs. */
export async function completeBackupIfArchived(catalog: Catalog, layout: ServerLayout, server: string, backupId: string, log: Logger): Promise<BackupRecord | null> {
  const b = catalog.getBackup(server, backupId);
  if (!b || b.status !== 'WAITING_FOR_WALS' || !b.beginWal || !b.endWal || !b.walSegmentSize) return b;
  const from = parseWalFileName(b.beginWal, b.walSegmentSize);
  const to = parseWalFileName(b.endWal, b.walSegmentSize);
  if (from.tli !== to.tli) {
    // A backup whose end is on another timeline than its start (promotion during the backup):
    // both ranges must be present.
    const a = catalog.missingSegments(server, from.tli, from.segno, from.segno);
    const c = catalog.missingSegments(server, to.tli, from.segno + 1n, to.segno);
    if (a.length || c.length) return b;
  } else if (catalog.missingSegments(server, from.tli, from.segno, to.segno).length) {
    return b;
  }
  const rec = catalog.updateBackup(server, backupId, { status: 'DONE' });
  await writeBackupInfo(layout, rec);
  log.info(`backup ${backupId} is DONE: WAL ${b.beginWal} to ${b.endWal} archived`);
  return rec;
}

/** Completes every WAITING_FOR_WALS backup of a server whose WAL is now archived. */
export async function completeWaitingBackups(catalog: Catalog, layout: ServerLayout, log: Logger): Promise<BackupRecord[]> {
  const done: BackupRecord[] = [];
  for (const b of catalog.listBackups(layout.server, { status: ['WAITING_FOR_WALS'] })) {
    const r = await completeBackupIfArchived(catalog, layout, layout.server, b.backupId, log);
    if (r?.status === 'DONE') done.push(r);
  }
  return done;
}
